//! Which held story a new item repeats, and which copy represents the story.
//!
//! Owns the rules; the SQL (signature and band tables, clusters, candidate lookups)
//! lives in `store`, the fingerprint in `normalise::fingerprint`. What the rules need
//! from the items held is this module's own trait, [`Candidates`], with its own error
//! ([`LookupError`]): the store implements it, and nothing of SQLite reaches here.
//!
//! Candidates come from indexes only — the same canonical URL, the same text hash, the
//! same normalised title, or a shared MinHash LSH bucket — so the cost per item does
//! not grow with the number of items held (no all-pairs comparison). Each candidate is
//! then verified on the exact shingle sets of both texts:
//!
//! 1. same canonical URL (http/https, `www.`, tracking parameters already folded by
//!    `normalise::url::canonical`), unless both texts are substantial and unrelated (a
//!    partner linking every item to one overview page);
//! 2. the same globally unique GUID (a URL, `tag:` or `urn:` ID) in another source;
//! 3. same text (hash of the normalised text, at least
//!    [`fingerprint::MIN_TEXT_FOR_HASH`] chars);
//! 4. text Jaccard ≥ `strong_jaccard`, at any distance in time;
//! 5. text Jaccard ≥ `near_jaccard` within `window_days`;
//! 6. the titles agree and the shorter text is contained (≥ `teaser_containment`) in
//!    the longer one within `window_days` (a teaser of a full post);
//! 7. the titles agree and text Jaccard ≥ `title_jaccard` within `window_days`;
//! 8. the titles are related — one is the other with a subtitle or a prefix, or they
//!    share such a part (`fingerprint::title_parts`) — and the shorter text is
//!    contained (≥ [`ABRIDGED_CONTAINMENT`]) in the longer one within `window_days`: an
//!    abridged copy (the first paragraphs, maybe a sentence of the copier's own) or a
//!    teaser under an extended or shortened title. Candidates for it come from the
//!    title parts ([`Candidates::by_title_parts`]), since LSH finds a half-length copy only
//!    by chance.
//!
//! Never duplicates: texts detected in different languages (rules 3–7), and posts of a series
//! whose titles differ only in their numbers (`Newsletter 10/2017`, `Newsletter
//! 11/2017`), whatever their text says — a series shares its template by design.
//!
//! The representative of a cluster is the copy from the highest-priority source, then
//! the one seen first; between copies seen at the same time from one source (a post
//! listed twice), the later-dated one, since a re-post is the corrected version; from
//! different sources, the earlier-dated one (the original). Once a representative has
//! been shown to readers it stays, whatever arrives later.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use crate::config::DedupeConfig;
use crate::model::{Item, ItemId, SourceId};
use crate::normalise::fingerprint::{self, MIN_TEXT_FOR_HASH};

/// What deduplication decided for a new item; the store applies it.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A story not held yet: the item represents its own cluster.
    New,
    /// The item repeats the story `rep` represents; it joins as provenance.
    Joins { rep: ItemId, reason: String },
    /// The item repeats `rep`'s story and outranks it, and `rep` was never shown to
    /// readers: the item becomes the representative and `rep`'s cluster joins it.
    Supersedes { rep: ItemId, reason: String },
}

/// A held item as deduplication compares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub id: ItemId,
    pub source: SourceId,
    /// The representative of its cluster (itself when it is one).
    pub rep: ItemId,
    pub title: String,
    /// Normalised matching text (see `normalise::text::for_matching`).
    pub text: String,
    pub language: Option<String>,
    pub published: DateTime<Utc>,
    pub first_seen: DateTime<Utc>,
    pub canonical_url: Option<String>,
    pub text_hash: Option<String>,
    pub guid: Option<String>,
}

/// What comparing a held item derives from its text and title, each part computed on
/// first use. Storage that keeps held items in memory (`store::overlay`) shares one per
/// item across the decisions of a run, so a held story is shingled once, not once for
/// every new item it is compared with. It must be dropped when the item's text or
/// title changes.
#[derive(Debug, Default)]
pub struct Derived {
    shingles: OnceLock<Vec<u64>>,
    title_key: OnceLock<String>,
    title_parts: OnceLock<Vec<String>>,
    /// Detected on first use (see `language_of`).
    language: OnceLock<Option<String>>,
}

impl Derived {
    /// The [`fingerprint::title_key`] of `title`, the title of the item this is for.
    pub fn title_key(&self, title: &str) -> &str {
        self.title_key.get_or_init(|| fingerprint::title_key(title))
    }

    /// The [`fingerprint::title_parts`] of `title`, the title of the item this is for.
    pub fn title_parts(&self, title: &str) -> &[String] {
        self.title_parts
            .get_or_init(|| fingerprint::title_parts(title))
    }
}

/// What deduplication needs from the items held: candidates found by index only (so
/// the cost per item does not grow with the store), the held items themselves, and
/// whether readers have seen a representative. Each lookup returns a bounded number
/// of candidates, however many items share the key.
pub trait Candidates {
    /// Held items with this canonical URL.
    fn by_canonical_url(&self, url: &str) -> Result<Vec<ItemId>, LookupError>;
    /// Held items with this GUID, in any source.
    fn by_guid(&self, guid: &str) -> Result<Vec<ItemId>, LookupError>;
    /// Held items whose normalised text hashes the same.
    fn by_text_hash(&self, hash: &str) -> Result<Vec<ItemId>, LookupError>;
    /// The most recent held items with the same normalised title.
    fn by_title(&self, title: &str) -> Result<Vec<ItemId>, LookupError>;
    /// Held items whose title has a part in common with this one, or is a part of it
    /// (see `fingerprint::title_parts`).
    fn by_title_parts(&self, title: &str) -> Result<Vec<ItemId>, LookupError>;
    /// Held items sharing an LSH bucket with `minhash`, with their signatures.
    fn by_bands(&self, minhash: &[u32]) -> Result<Vec<(ItemId, Vec<u32>)>, LookupError>;
    /// One held item, if it is still held.
    fn held(&self, id: &ItemId) -> Result<Option<Held>, LookupError>;
    /// One held item with what comparing it derives; storage that keeps these across
    /// decisions returns its shared copy.
    fn held_derived(&self, id: &ItemId) -> Result<Option<(Held, Arc<Derived>)>, LookupError> {
        Ok(self.held(id)?.map(|h| (h, Arc::default())))
    }
    /// Has this representative's published ID been shown to readers?
    fn was_shown(&self, id: &ItemId) -> Result<bool, LookupError>;
    /// Where what comparing the new `item` derives is kept while it is decided. Storage
    /// that keeps held items in memory hands out the one it keeps the item with once
    /// stored (and uses for its own title lookups), so nothing is derived twice.
    fn derived_for(&self, item: &Item) -> Arc<Derived> {
        let _ = item;
        Arc::default()
    }
}

/// A lookup the storage behind [`Candidates`] could not answer; it says what the
/// storage said.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct LookupError(Box<dyn std::error::Error + Send + Sync>);

impl LookupError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> LookupError {
        LookupError(Box::new(e))
    }
}
/// Texts with fewer distinct shingles than this are not compared by similarity.
const MIN_SHINGLES: usize = 8;
/// A teaser needs at least this many shingles to count as contained in a longer text.
const MIN_TEASER_SHINGLES: usize = 4;
/// Below this Jaccard, two substantial texts under one URL are different items.
const URL_UNRELATED_JACCARD: f64 = 0.1;
/// Share of the shorter text's shingles found in the longer one that makes an item under
/// a related title an abridged copy (rule 8). An abridged copy keeps whole paragraphs
/// (containment 1, less a sentence of its own: 0.81–0.89 in the labelled set of
/// `tests/fixtures/dedupe/abridged`); there, follow-ups that quote a paragraph of the
/// original reach 0.22–0.37 and other related stories 0.07 at most, and unrelated texts
/// sharing any shingle reach 0.58 at most on the bench corpus.
pub const ABRIDGED_CONTAINMENT: f64 = 0.7;
/// Band candidates whose estimated Jaccard is this far below every threshold are
/// dropped before their text is loaded.
const ESTIMATE_SLACK: f64 = 0.15;

/// Why an item was merged into a cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    ExactUrl,
    SameGuid,
    SameText,
    Similar(f64),
    Teaser(f64),
    SameTitle(f64),
    Abridged(f64),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::ExactUrl => f.write_str("exact URL"),
            Reason::SameGuid => f.write_str("same GUID"),
            Reason::SameText => f.write_str("same text"),
            Reason::Similar(j) => write!(f, "text similarity {j:.2}"),
            Reason::Teaser(c) => write!(f, "same title, teaser contained {c:.2}"),
            Reason::SameTitle(j) => write!(f, "same title, text similarity {j:.2}"),
            Reason::Abridged(c) => write!(f, "related title, abridged text contained {c:.2}"),
        }
    }
}

impl Reason {
    /// Strength used to pick the best of several matching candidates.
    fn rank(&self) -> f64 {
        match self {
            Reason::ExactUrl => 3.0,
            Reason::SameGuid => 2.5,
            Reason::SameText => 2.0,
            Reason::Similar(s) | Reason::Teaser(s) | Reason::SameTitle(s) => *s,
            // Weaker than the same-title rules at the same score: the titles differ.
            Reason::Abridged(s) => *s * 0.9,
        }
    }
}

/// Deduplication with its settings and the sources' priorities.
#[derive(Debug, Clone)]
pub struct Deduper {
    cfg: DedupeConfig,
    priorities: HashMap<SourceId, i32>,
}

impl Deduper {
    pub fn new(cfg: DedupeConfig, priorities: HashMap<SourceId, i32>) -> Deduper {
        Deduper { cfg, priorities }
    }

    fn priority(&self, s: &SourceId) -> i32 {
        self.priorities.get(s).copied().unwrap_or(0)
    }

    /// Decides for a new `item` (not yet stored) whether it repeats a held story.
    pub fn decide(&self, held: &dyn Candidates, item: &Item) -> Result<Decision, LookupError> {
        let mut seen = Vec::new();
        let Some((rep, reason)) = self.find_match_among(held, item, &mut seen)? else {
            return Ok(Decision::New);
        };
        let reason = reason.to_string();
        // The representative is usually one of the candidates just read: its row is
        // not read again.
        let rep_held = match seen.into_iter().find(|(h, _)| h.id == rep) {
            Some((h, _)) => h,
            None => match held.held(&rep)? {
                Some(h) => h,
                None => return Ok(Decision::New),
            },
        };
        if !held.was_shown(&rep)? && self.outranks(item, &rep_held) {
            return Ok(Decision::Supersedes { rep, reason });
        }
        Ok(Decision::Joins { rep, reason })
    }

    /// Does `item` make a better representative than the held `rep`?
    fn outranks(&self, item: &Item, rep: &Held) -> bool {
        let (pi, pr) = (self.priority(&item.source), self.priority(&rep.source));
        if pi != pr {
            return pi > pr;
        }
        // The store keeps whole seconds; compare at that precision.
        let (si, sr) = (item.first_seen.timestamp(), rep.first_seen.timestamp());
        if si != sr {
            return si < sr;
        }
        let (di, dr) = (item.published.timestamp(), rep.published.timestamp());
        if di != dr {
            return if item.source == rep.source {
                di > dr
            } else {
                di < dr
            };
        }
        item.id < rep.id
    }

    /// The representative `item` should join and why, or `None` for a new story.
    pub fn find_match(
        &self,
        held: &dyn Candidates,
        item: &Item,
    ) -> Result<Option<(ItemId, Reason)>, LookupError> {
        self.find_match_among(held, item, &mut Vec::new())
    }

    /// [`Deduper::find_match`], keeping the held candidates it read in `seen`.
    fn find_match_among(
        &self,
        held: &dyn Candidates,
        item: &Item,
        seen: &mut Vec<(Held, Arc<Derived>)>,
    ) -> Result<Option<(ItemId, Reason)>, LookupError> {
        let derived = held.derived_for(item);
        let mut cands: Vec<ItemId> = Vec::new();
        if let Some(u) = &item.canonical_url {
            cands.extend(held.by_canonical_url(u)?);
        }
        if let Some(g) = item.guid.as_deref().filter(|g| globally_unique(g)) {
            cands.extend(held.by_guid(g)?);
        }
        if item.text.len() >= MIN_TEXT_FOR_HASH {
            cands.extend(held.by_text_hash(&item.fingerprint.text_hash)?);
        }
        cands.extend(held.by_title(&item.title)?);
        cands.extend(held.by_title_parts(&item.title)?);
        let floor = self
            .cfg
            .near_jaccard
            .min(self.cfg.title_jaccard)
            .min(self.cfg.strong_jaccard)
            - ESTIMATE_SLACK;
        for (id, sig) in held.by_bands(&item.fingerprint.minhash)? {
            let est = fingerprint::estimate_jaccard(&item.fingerprint.minhash, &sig);
            if est >= floor {
                cands.push(id);
            }
        }
        cands.sort();
        cands.dedup();
        cands.retain(|c| *c != item.id);
        if cands.is_empty() {
            return Ok(None);
        }
        let mine = Side::of_item(item, &derived);
        let mut best: Option<(ItemId, Reason)> = None;
        for id in cands {
            let Some((h, d)) = held.held_derived(&id)? else {
                continue;
            };
            if let Some(r) = self.verify(&mine, &Side::of_held(&h, &d)) {
                if best.as_ref().is_none_or(|(_, b)| r.rank() > b.rank()) {
                    best = Some((h.rep.clone(), r));
                }
            }
            seen.push((h, d));
        }
        Ok(best)
    }

    /// The rules of the module doc, applied to one pair. The language check (rules 3–7)
    /// runs last and only for a pair that would otherwise match: detecting a language
    /// is the dearest step, and most candidates fail on text first.
    fn verify(&self, a: &Side, b: &Side) -> Option<Reason> {
        let (shingles_a, shingles_b) = (a.shingles, b.shingles);
        let (jac, cont) = fingerprint::overlap(shingles_a, shingles_b);
        if a.url.is_some() && a.url == b.url {
            let substantial = shingles_a.len() >= MIN_SHINGLES && shingles_b.len() >= MIN_SHINGLES;
            if substantial && jac < URL_UNRELATED_JACCARD && a.title_key != b.title_key {
                return None;
            }
            return Some(Reason::ExactUrl);
        }
        if a.guid.is_some_and(globally_unique) && a.guid == b.guid {
            return Some(Reason::SameGuid);
        }
        if is_series(a.title, b.title) {
            return None;
        }
        let reason = self.text_rule(a, b, jac, cont)?;
        same_language(a, b).then_some(reason)
    }

    /// Rules 3–7, before the language guard.
    fn text_rule(&self, a: &Side, b: &Side, jac: f64, cont: f64) -> Option<Reason> {
        let (shingles_a, shingles_b) = (a.shingles, b.shingles);
        if a.text.len() >= MIN_TEXT_FOR_HASH && a.text_hash == b.text_hash {
            return Some(Reason::SameText);
        }
        let near_in_time = (a.published - b.published).num_days().abs() <= self.cfg.window_days;
        let both_long = shingles_a.len() >= MIN_SHINGLES && shingles_b.len() >= MIN_SHINGLES;
        if both_long && jac >= self.cfg.strong_jaccard {
            return Some(Reason::Similar(jac));
        }
        if both_long && near_in_time && jac >= self.cfg.near_jaccard {
            return Some(Reason::Similar(jac));
        }
        let titles_agree = !a.title_key.is_empty() && a.title_key == b.title_key;
        if titles_agree && near_in_time {
            let shorter = shingles_a.len().min(shingles_b.len());
            if shorter >= MIN_TEASER_SHINGLES && cont >= self.cfg.teaser_containment {
                return Some(Reason::Teaser(cont));
            }
            if both_long && jac >= self.cfg.title_jaccard {
                return Some(Reason::SameTitle(jac));
            }
        }
        if near_in_time && !titles_agree && titles_related(a, b) {
            let shorter = shingles_a.len().min(shingles_b.len());
            if shorter >= MIN_SHINGLES && cont >= ABRIDGED_CONTAINMENT {
                return Some(Reason::Abridged(cont));
            }
        }
        None
    }
}

/// Rule 8's titles: one is a part of the other (a subtitle or prefix added or dropped),
/// or both share a part.
fn titles_related(a: &Side, b: &Side) -> bool {
    let (pa, pb) = (a.title_parts(), b.title_parts());
    (!a.title_key.is_empty() && pb.iter().any(|p| p == a.title_key))
        || (!b.title_key.is_empty() && pa.iter().any(|p| p == b.title_key))
        || pa.iter().any(|p| pb.contains(p))
}

/// One side of a comparison, borrowed from a new item or a held one and what it
/// derives ([`Derived`]). The new item's side is built once per decision and compared
/// with every candidate, so its shingles and language are computed once, not once per
/// candidate; a held item's are shared by whoever keeps its [`Derived`].
struct Side<'a> {
    title: &'a str,
    title_key: &'a str,
    text: &'a str,
    text_hash: Option<&'a str>,
    url: Option<&'a str>,
    guid: Option<&'a str>,
    published: DateTime<Utc>,
    shingles: &'a [u64],
    derived: &'a Derived,
}

impl<'a> Side<'a> {
    fn of_item(i: &'a Item, d: &'a Derived) -> Side<'a> {
        Side {
            title: &i.title,
            title_key: d.title_key(&i.title),
            text: &i.text,
            text_hash: Some(&i.fingerprint.text_hash),
            url: i.canonical_url.as_deref(),
            guid: i.guid.as_deref(),
            published: i.published,
            shingles: d.shingles.get_or_init(|| fingerprint::shingles(&i.text)),
            derived: d,
        }
    }
    fn of_held(h: &'a Held, d: &'a Derived) -> Side<'a> {
        Side {
            title: &h.title,
            title_key: d.title_key(&h.title),
            text: &h.text,
            text_hash: h.text_hash.as_deref(),
            url: h.canonical_url.as_deref(),
            guid: h.guid.as_deref(),
            published: h.published,
            shingles: d.shingles.get_or_init(|| fingerprint::shingles(&h.text)),
            derived: d,
        }
    }
    fn title_parts(&self) -> &'a [String] {
        self.derived.title_parts(self.title)
    }
}

/// The primary language of a side's text, when detection is reliable. Declared
/// languages are not used: partners often declare one feed language for every item,
/// and texts that share long word runs are in one language anyway; the guard is for
/// versions of a story whose texts really are in different languages.
fn language_of<'s>(s: &'s Side) -> Option<&'s str> {
    s.derived
        .language
        .get_or_init(|| crate::normalise::lang::detect(s.text))
        .as_deref()
}

fn same_language(a: &Side, b: &Side) -> bool {
    // Detection is a function of the text: one text is in one language, whatever it
    // is, and detecting it is the dearest step of a comparison (an exact copy under
    // another URL would pay it twice).
    if a.text == b.text {
        return true;
    }
    match (language_of(a), language_of(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Two titles of one series: equal once their numbers are removed, different with them
/// (`Newsletter 10/2017` and `Newsletter 11/2017`).
pub fn is_series(a: &str, b: &str) -> bool {
    let strip = |s: &str| -> (String, String) {
        let key = fingerprint::title_key(s);
        let words: String = key
            .split(' ')
            .filter(|w| !is_number(w))
            .collect::<Vec<_>>()
            .join(" ");
        let numbers: String = key
            .split(' ')
            .filter(|w| is_number(w))
            .collect::<Vec<_>>()
            .join(" ");
        (words, numbers)
    };
    let (wa, na) = strip(a);
    let (wb, nb) = strip(b);
    !wa.is_empty() && wa == wb && !na.is_empty() && !nb.is_empty() && na != nb
}

/// GUIDs that name an item worldwide (a URL, `tag:`, `urn:uuid:` …) identify it across
/// sources too; short local counters ("123") say nothing outside their feed.
fn globally_unique(guid: &str) -> bool {
    guid.len() >= 12 && guid.contains(':') && !guid.chars().all(|c| c.is_ascii_digit())
}

fn is_number(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_numeric())
}

/// Keeps the first of several entries with one ID in a single fetch (the same GUID
/// listed twice by a source); returns how many were dropped.
pub fn collapse_same_id(items: &mut Vec<Item>) -> usize {
    let before = items.len();
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.id.clone()));
    before - items.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_issues_of_a_series_are_recognised() {
        assert!(is_series("Newsletter 10/2017", "Newsletter 11/2017"));
        assert!(!is_series("Newsletter 10/2017", "Newsletter 10/2017"));
        assert!(!is_series(
            "DEFUS auf dem DPT 2017",
            "DEFUS auf dem Deutschen Präventionstag 2017"
        ));
        assert!(!is_series("Wetter", "Wetter"));
        // Words with digits in them are words, not issue numbers.
        assert!(!is_series(
            "G20-Gipfel in Hamburg",
            "G7-Gipfel in Hamburg 2"
        ));
        assert!(!is_series("p1 berichtet (3)", "p2 berichtet (3)"));
    }
}
