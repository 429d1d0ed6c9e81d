//! The dedupe index of the items this run stored, in memory: SQLite stays the record,
//! and this answers what the SQL lookups of `dedup` would answer about those items
//! without asking SQLite.
//!
//! Three parts, each exact, none ever an approximation of the SQL:
//! - the key lists (URL, GUID, text hash, title, title parts) of the items inserted
//!   since the run began. When nothing was held when it began ([`Overlay::complete`]),
//!   these lists are every row the SQL lookups could find, so they answer instead of
//!   SQLite, cut and ordered as the SQL cuts and orders them (`bounded`); otherwise
//!   the lookups go to SQLite as before, so a run adding ten items to a store of
//!   200,000 loads nothing;
//! - the held candidates (`Held`, with what comparing them derives: shingles, title
//!   key, language), for this run's items and those read from SQLite, so a story is
//!   read and shingled once per run, not once per new item compared with it;
//! - the signatures of the numbers this run gave, for the band lookup.
//!
//! Everything follows the store's transactions like `pending` does: [`Overlay::mark`]
//! before one, [`Overlay::undo_to`] when it rolls back. Writes that change what the
//! lookups would find other than the upsert's inserts (an item changed in place, a
//! prune, a withdrawn source handing its stories on, another process's commit, seen
//! through `PRAGMA data_version`) turn the affected part off for the rest of the run;
//! [`Overlay::reset`] at the end of a run frees it all.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::Connection;

use super::bounded::{EXACT_KEY_LIMIT, TITLE_LIMIT};
use super::from_ts;
use crate::dedupe::{Decision, Derived, Held};
use crate::model::{Item, ItemId, SourceId};

/// Most items the key lists hold; past it the lookups go to SQLite for the rest of the
/// run (about 0.5 KB an item: a medium build's 10,000 take ~5 MB).
const KEYS_CAP: usize = 1 << 17;
/// Bytes of held text the candidate cache keeps (its shingles take about as much
/// again); past it candidates are read from SQLite. A medium build's 10,000 items hold
/// about 35 MB of text.
const HELD_BUDGET: usize = 64 << 20;

/// Most signatures kept (about 0.6 KB each); past it the band lookup reads the rest
/// from SQLite, as it reads those of earlier runs. The tests keep few, so that path
/// is exercised too.
const SIGS_CAP: usize = if cfg!(test) { 64 } else { 1 << 15 };

/// Which exact-key lookup (`dedup::by_canonical_url`, `by_guid`, `by_text_hash`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Exact {
    Url,
    Guid,
    TextHash,
}

/// A key's items as (sort key, ID): `first_seen` for the exact keys, `published` for
/// the title keys.
type Lists = HashMap<String, Vec<(i64, ItemId)>>;

/// An item of the key lists, as inserted: what to take out again when its
/// transaction rolls back. Kept only until the transaction commits.
struct Entry {
    id: ItemId,
    source: SourceId,
    exact: [Option<String>; 3],
    title_key: String,
    parts: Vec<String>,
}

#[derive(Default)]
struct Keys {
    /// The entries of the open transaction, newest last.
    entries: Vec<Entry>,
    exact: [Lists; 3],
    title: Lists,
    parts: Lists,
    ids: HashSet<ItemId>,
    sources: HashMap<SourceId, usize>,
}

/// One change, to undo when its transaction rolls back.
enum Op {
    /// An entry pushed on the key lists.
    Entry,
    /// A candidate cached (with what it replaced).
    Cached(ItemId, Option<(Held, Arc<Derived>)>),
    /// A candidate dropped (its item changed).
    Uncached((Held, Arc<Derived>)),
    /// A cached candidate's representative changed from this one.
    Rep(ItemId, ItemId),
    /// A signature number given.
    Sig(i64),
}

#[derive(Default)]
pub(super) struct Overlay {
    /// Taken up by the run's first write ([`Overlay::begin`]).
    begun: bool,
    /// The cache and signatures may be used (not turned off since the run began).
    live: bool,
    /// Every item held is in `keys`: nothing was held when the run began, and nothing
    /// but this run's inserts has changed the rows the lookups read.
    complete: bool,
    /// Aliases were written: the alias lookup must ask SQLite.
    aliased: bool,
    /// `PRAGMA data_version` when the run began: another connection's commit changes it.
    data_version: i64,
    keys: Keys,
    cache: HashMap<ItemId, (Held, Arc<Derived>)>,
    /// The cached candidates of each representative, so a new representative renames
    /// its cluster's without a pass over the cache.
    members: HashMap<ItemId, Vec<ItemId>>,
    cached_bytes: usize,
    /// Signature number → (item, fingerprint version, signature).
    sigs: HashMap<i64, (ItemId, u32, Vec<u32>)>,
    log: Vec<Op>,
}

/// Where the overlay stood when a transaction began.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark(usize);

impl Overlay {
    /// Called by every write that consults or feeds the overlay, before it does: the
    /// first of a run notes whether anything is held; later ones notice whether another
    /// connection has committed since (then the overlay is off for the run).
    pub(super) fn begin(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if !self.begun {
            self.begun = true;
            self.live = true;
            self.data_version = version;
            self.complete = !conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM items) OR EXISTS (SELECT 1 FROM item_alias)",
                )?
                .query_row([], |r| r.get::<_, bool>(0))?;
        } else if version != self.data_version {
            self.turn_off();
        }
        Ok(())
    }

    /// Off for the rest of the run: the rows changed in ways the overlay does not follow.
    /// Between runs there is nothing to forget: the next run begins from the rows.
    pub(super) fn turn_off(&mut self) {
        if !self.begun {
            return;
        }
        *self = Overlay {
            begun: true,
            ..Overlay::default()
        };
    }

    /// Frees everything; the next write begins a new run.
    ///
    /// A cold run's overlay holds every item it stored: freeing its maps costs tens of
    /// milliseconds that the publish, which comes next, need not wait for.
    pub(super) fn reset(&mut self) {
        let old = std::mem::take(self);
        if old.begun {
            drop_elsewhere(old);
        }
    }

    pub(super) fn mark(&self) -> Mark {
        Mark(self.log.len())
    }

    /// The open transaction committed: nothing before now can be undone, so the undo
    /// log and the entries it would pop go. Without this they held every item of the
    /// run twice more (a cold large build: hundreds of MB).
    pub(super) fn committed(&mut self) {
        self.log = Vec::new();
        self.keys.entries = Vec::new();
    }

    /// Forgets what was added or changed since `mark`: its transaction rolled back.
    pub(super) fn undo_to(&mut self, mark: Mark) {
        while self.log.len() > mark.0 {
            match self.log.pop().expect("longer than the mark") {
                Op::Entry => self.pop_entry(),
                Op::Cached(id, before) => {
                    self.uncache(&id);
                    if let Some(before) = before {
                        self.cache_entry(before);
                    }
                }
                Op::Uncached(was) => self.cache_entry(was),
                Op::Rep(id, old) => self.set_rep(&id, old),
                Op::Sig(n) => {
                    self.sigs.remove(&n);
                }
            }
        }
    }

    fn pop_entry(&mut self) {
        let Some(e) = self.keys.entries.pop() else {
            return;
        };
        let keys = &mut self.keys;
        let take = |lists: &mut Lists, key: &str| {
            let list = lists.get_mut(key).expect("the entry's key has a list");
            let last = list.pop().expect("the entry is the list's last");
            debug_assert_eq!(last.1, e.id);
            if list.is_empty() {
                lists.remove(key);
            }
        };
        for (lists, key) in keys.exact.iter_mut().zip(&e.exact) {
            if let Some(key) = key {
                take(lists, key);
            }
        }
        take(&mut keys.title, &e.title_key);
        for part in &e.parts {
            take(&mut keys.parts, part);
        }
        keys.ids.remove(&e.id);
        if let Some(n) = keys.sources.get_mut(&e.source) {
            *n -= 1;
        }
    }

    /// Puts a candidate in the cache and its representative's members.
    fn cache_entry(&mut self, entry: (Held, Arc<Derived>)) {
        let id = entry.0.id.clone();
        self.cached_bytes += entry.0.text.len();
        self.members
            .entry(entry.0.rep.clone())
            .or_default()
            .push(id.clone());
        if let Some(was) = self.cache.insert(id, entry) {
            // Not reached: callers take the old entry out first.
            self.cached_bytes -= was.0.text.len();
        }
    }

    /// Takes a candidate out of the cache and its representative's members.
    fn uncache(&mut self, id: &ItemId) -> Option<(Held, Arc<Derived>)> {
        let was = self.cache.remove(id)?;
        self.cached_bytes -= was.0.text.len();
        if let Some(m) = self.members.get_mut(&was.0.rep) {
            m.retain(|x| x != id);
            if m.is_empty() {
                self.members.remove(&was.0.rep);
            }
        }
        Some(was)
    }

    fn set_rep(&mut self, id: &ItemId, rep: ItemId) {
        if let Some(mut entry) = self.uncache(id) {
            entry.0.rep = rep;
            self.cache_entry(entry);
        }
    }

    /// A new item was inserted with `decision`, given signature number `n`, and
    /// compared as `derived` says.
    pub(super) fn inserted(
        &mut self,
        item: &Item,
        decision: &Decision,
        n: i64,
        derived: Arc<Derived>,
    ) {
        if !self.live {
            return;
        }
        let rep = match decision {
            Decision::New => item.id.clone(),
            Decision::Joins { rep, .. } => rep.clone(),
            Decision::Supersedes { rep: old, .. } => {
                // `dedup::apply`: the old representative's cluster (itself included)
                // now has this item as its representative.
                for id in self.members.get(old).cloned().unwrap_or_default() {
                    self.set_rep(&id, item.id.clone());
                    self.log.push(Op::Rep(id, old.clone()));
                }
                item.id.clone()
            }
        };
        if self.complete {
            self.index_keys(item, &derived);
        }
        // As `dedup::held` reads the row back: dates in whole seconds.
        let held = Held {
            id: item.id.clone(),
            source: item.source.clone(),
            rep,
            title: item.title.clone(),
            text: item.text.clone(),
            language: item.language.clone(),
            published: from_ts(item.published.timestamp()),
            first_seen: from_ts(item.first_seen.timestamp()),
            canonical_url: item.canonical_url.clone(),
            text_hash: Some(item.fingerprint.text_hash.clone()),
            guid: item.guid.clone(),
        };
        self.cache_held(held, derived);
        self.signature(item, n);
    }

    fn index_keys(&mut self, item: &Item, derived: &Derived) {
        if self.keys.ids.len() >= KEYS_CAP {
            self.complete = false;
            self.keys = Keys::default();
            return;
        }
        let first_seen = item.first_seen.timestamp();
        let published = item.published.timestamp();
        let exact = [
            item.canonical_url.clone(),
            item.guid.clone(),
            Some(item.fingerprint.text_hash.clone()),
        ];
        let title_key = derived.title_key(&item.title).to_owned();
        // `INSERT OR IGNORE` per part: a part named twice has one row.
        let mut parts = derived.title_parts(&item.title).to_vec();
        parts.sort();
        parts.dedup();
        let keys = &mut self.keys;
        for (lists, key) in keys.exact.iter_mut().zip(&exact) {
            if let Some(key) = key {
                lists
                    .entry(key.clone())
                    .or_default()
                    .push((first_seen, item.id.clone()));
            }
        }
        keys.title
            .entry(title_key.clone())
            .or_default()
            .push((published, item.id.clone()));
        for part in &parts {
            keys.parts
                .entry(part.clone())
                .or_default()
                .push((published, item.id.clone()));
        }
        keys.ids.insert(item.id.clone());
        *keys.sources.entry(item.source.clone()).or_default() += 1;
        keys.entries.push(Entry {
            id: item.id.clone(),
            source: item.source.clone(),
            exact,
            title_key,
            parts,
        });
        self.log.push(Op::Entry);
    }

    fn signature(&mut self, item: &Item, n: i64) {
        if self.sigs.len() >= SIGS_CAP {
            return;
        }
        let fp = &item.fingerprint;
        self.sigs
            .insert(n, (item.id.clone(), fp.version, fp.minhash.clone()));
        self.log.push(Op::Sig(n));
    }

    /// A held item was rewritten in place under a new text or title and given
    /// signature number `n`.
    pub(super) fn updated(&mut self, item: &Item, n: i64) {
        if !self.live {
            return;
        }
        if self.keys.ids.contains(&item.id) {
            // Its keys in the lists are its old ones.
            self.complete = false;
            self.keys = Keys::default();
        }
        if let Some(was) = self.uncache(&item.id) {
            self.log.push(Op::Uncached(was));
        }
        self.signature(item, n);
    }

    /// Aliases were written (`remap_churned_ids`).
    pub(super) fn aliased(&mut self) {
        self.aliased = true;
    }

    /// Keeps a candidate read from SQLite (or just inserted), while the budget lasts.
    pub(super) fn cache_held(&mut self, held: Held, derived: Arc<Derived>) {
        if !self.live || self.cached_bytes + held.text.len() > HELD_BUDGET {
            return;
        }
        let id = held.id.clone();
        let before = self.uncache(&id);
        self.cache_entry((held, derived));
        self.log.push(Op::Cached(id, before));
    }

    /// A cached candidate, as `dedup::held` would read it.
    pub(super) fn held(&self, id: &ItemId) -> Option<(Held, Arc<Derived>)> {
        self.cache.get(id).map(|(h, d)| (h.clone(), Arc::clone(d)))
    }

    /// Signature `n`, if this run gave it: (item, version, signature).
    pub(super) fn sig(&self, n: i64) -> Option<&(ItemId, u32, Vec<u32>)> {
        self.sigs.get(&n)
    }

    /// What `dedup`'s exact-key lookup finds, when the lists know it: the first
    /// [`EXACT_KEY_LIMIT`] by first sighting, then ID.
    pub(super) fn by_exact(&self, which: Exact, key: &str) -> Option<Vec<ItemId>> {
        if !self.complete {
            return None;
        }
        let mut rows = self.keys.exact[which as usize]
            .get(key)
            .cloned()
            .unwrap_or_default();
        rows.sort_unstable();
        rows.truncate(EXACT_KEY_LIMIT);
        Some(rows.into_iter().map(|(_, id)| id).collect())
    }

    /// What `bounded::by_title_key` finds, when the lists know it.
    pub(super) fn by_title_key(&self, key: &str) -> Option<Vec<ItemId>> {
        self.complete.then(|| recent(&self.keys.title, key))
    }

    /// What `bounded::by_title_part` finds, when the lists know it.
    pub(super) fn by_title_part(&self, part: &str) -> Option<Vec<ItemId>> {
        self.complete.then(|| recent(&self.keys.parts, part))
    }

    /// Whether an item with this ID is held, when the lists know it.
    pub(super) fn holds(&self, id: &ItemId) -> Option<bool> {
        self.complete.then(|| self.keys.ids.contains(id))
    }

    /// Whether `source` has items held, when the lists know it.
    pub(super) fn holds_source(&self, source: &SourceId) -> Option<bool> {
        self.complete
            .then(|| self.keys.sources.get(source).is_some_and(|&n| n > 0))
    }

    /// Whether the alias table is known to be empty.
    pub(super) fn no_aliases(&self) -> bool {
        self.complete && !self.aliased
    }
}

/// The most recent [`TITLE_LIMIT`] of a title key's items: by date, newest first, then
/// by ID (the title lookups' `ORDER BY published DESC, item_id`).
fn recent(lists: &Lists, key: &str) -> Vec<ItemId> {
    let mut rows: Vec<&(i64, ItemId)> = lists
        .get(key)
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    rows.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    rows.truncate(TITLE_LIMIT);
    rows.into_iter().map(|(_, id)| id.clone()).collect()
}

/// Drops `value` on a thread of its own; a failed spawn drops it here, with the closure.
fn drop_elsewhere<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("overlay-free".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::{DateTime, Duration, TimeZone, Utc};

    use super::{Exact, Lists, EXACT_KEY_LIMIT, SIGS_CAP, TITLE_LIMIT};
    use crate::dedupe::{Decision, Deduper};
    use crate::model::{DateSource, Item, ItemId, SourceId};
    use crate::normalise::fingerprint;
    use crate::store::{Store, StoreError};

    /// A deterministic stream of numbers (no dependency, the same items every run).
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    const WORDS: &[&str] = &[
        "stadt",
        "rat",
        "haushalt",
        "schule",
        "bahn",
        "wetter",
        "polizei",
        "feuerwehr",
        "hochwasser",
        "wahl",
        "kritik",
        "prozent",
        "jahr",
        "landkreis",
        "löhne",
        "tabelle",
        "verein",
        "markt",
        "brücke",
        "bürger",
        "sitzung",
        "antrag",
        "bau",
        "straße",
    ];

    fn words(rng: &mut Lcg, n: usize) -> Vec<&'static str> {
        (0..n)
            .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
            .collect()
    }

    /// Items of `sources` sources, built to collide on every key the lookups use: stories
    /// copied exactly, nearly, as teasers and under retitled headlines; URLs and GUIDs
    /// shared by more items than the exact-key limit; generic titles shared by more than
    /// the title limit; many items of one date, so ties are broken by ID.
    fn corpus(sources: usize, per_source: usize) -> Vec<Vec<Item>> {
        let mut rng = Lcg(16);
        let base = Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap();
        let stories: Vec<(String, String)> = (0..60)
            .map(|i| {
                let title = if i % 4 == 0 {
                    "Wetter".to_owned()
                } else {
                    words(&mut rng, 4).join(" ")
                };
                (title, words(&mut rng, 30 + (i % 5) * 20).join(" "))
            })
            .collect();
        (0..sources)
            .map(|s| {
                let source = format!("s{s:02}");
                (0..per_source)
                    .map(|k| {
                        let (title, text) = &stories[rng.below(stories.len() as u64) as usize];
                        let (mut title, mut text) = (title.clone(), text.clone());
                        match rng.below(6) {
                            0 => {
                                let mut w: Vec<&str> = text.split(' ').collect();
                                let at = rng.below(w.len() as u64) as usize;
                                w[at] = "anders";
                                text = w.join(" ");
                            }
                            1 => text = text.split(' ').take(12).collect::<Vec<_>>().join(" "),
                            2 => title = format!("Frankfurt am Main: {title}"),
                            3 => text = words(&mut rng, 40).join(" "),
                            _ => {}
                        }
                        let shared = rng.below(4) == 0;
                        let url = if shared {
                            format!("//example.org/shared/{}", rng.below(2))
                        } else {
                            format!("//{source}.example/{k}")
                        };
                        let guid = if rng.below(5) == 0 {
                            format!("urn:uuid:shared-{}", rng.below(2))
                        } else {
                            format!("{k}")
                        };
                        let published = base + Duration::hours(rng.below(3) as i64 * 24);
                        item(&source, k, &guid, &url, &title, &text, published)
                    })
                    .collect()
            })
            .collect()
    }

    fn item(
        source: &str,
        k: usize,
        guid: &str,
        url: &str,
        title: &str,
        text: &str,
        published: DateTime<Utc>,
    ) -> Item {
        Item {
            id: ItemId(format!("{source}:{k}")),
            source: SourceId(source.into()),
            guid: Some(guid.into()),
            url: None,
            source_link: None,
            canonical_url: Some(url.into()),
            title: title.into(),
            summary: String::new(),
            content_html: None,
            published,
            updated: None,
            date_source: DateSource::Declared,
            authors: Vec::new(),
            tags: Vec::new(),
            language: None,
            first_seen: published,
            text: text.into(),
            fingerprint: fingerprint::fingerprint(text),
        }
    }

    type Decisions = Vec<(ItemId, Decision)>;

    /// Stores `groups` of sources, each group in one transaction at its own time, and
    /// returns every decision made.
    fn store_all(s: &mut Store, groups: &[Vec<Vec<Item>>], from: usize) -> Decisions {
        let deduper = Deduper::new(Default::default(), HashMap::new());
        let mut decisions = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap()
                + Duration::seconds((from + g) as i64 / 2);
            s.in_transaction(|s| -> Result<(), StoreError> {
                for items in group {
                    let source = items[0].source.clone();
                    let mut items = items.clone();
                    s.remap_churned_ids(&source, &mut items, now)?;
                    s.upsert_source_items(&source, items, now, |held, item| {
                        let d = deduper.decide(held, item)?;
                        decisions.push((item.id.clone(), d.clone()));
                        Ok(d)
                    })?;
                }
                Ok(())
            })
            .unwrap();
        }
        decisions
    }

    fn clusters(s: &Store) -> Vec<(ItemId, Option<String>, Option<String>)> {
        let mut all: Vec<_> = s
            .all_items()
            .unwrap()
            .into_iter()
            .map(|(i, dup, why)| (i.id, dup, why))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// A store whose overlay is off for this run: SQLite answers every lookup.
    fn sqlite_only(s: &mut Store) {
        let Store { conn, overlay, .. } = s;
        overlay.get_mut().begin(conn).unwrap();
        overlay.get_mut().turn_off();
    }

    /// The same items, stored through the overlay (every answer it gives checked against
    /// SQLite's) and through SQLite alone, get the same decisions and the same clusters:
    /// on an empty store (the overlay answers the key lookups), then in a second run on
    /// the store now holding them (SQLite answers them, the overlay its candidates).
    #[test]
    fn the_overlay_decides_exactly_as_sqlite_alone() {
        let sources = corpus(24, 30);
        let groups: Vec<Vec<Vec<Item>>> = sources.chunks(4).map(|g| g.to_vec()).collect();
        let (first, second) = groups.split_at(4);
        let mut fast = Store::in_memory("example.org").unwrap();
        fast.check_overlay = true;
        let mut slow = Store::in_memory("example.org").unwrap();
        sqlite_only(&mut slow);
        let a = store_all(&mut fast, first, 0);
        {
            let o = fast.overlay.borrow();
            assert!(o.complete, "the first run's lookups were the overlay's");
            // Committed groups leave nothing to undo: the log and the entries went.
            assert!(o.log.is_empty() && o.keys.entries.is_empty());
            assert_eq!(o.keys.ids.len(), first.iter().flatten().flatten().count());
            assert_eq!(o.sigs.len(), SIGS_CAP, "later signatures came from SQLite");
            let longest = |lists: &Lists| lists.values().map(Vec::len).max().unwrap_or(0);
            assert!(longest(&o.keys.title) > TITLE_LIMIT && longest(&o.keys.parts) > TITLE_LIMIT);
            assert!(o.keys.exact[..2]
                .iter()
                .all(|l| longest(l) > EXACT_KEY_LIMIT));
        }
        let b = store_all(&mut slow, first, 0);
        assert_eq!(a, b);
        let (joins, supersedes) = (
            a.iter()
                .filter(|(_, d)| matches!(d, Decision::Joins { .. }))
                .count(),
            a.iter()
                .filter(|(_, d)| matches!(d, Decision::Supersedes { .. }))
                .count(),
        );
        assert!(
            joins > 100 && supersedes > 0,
            "{joins} joins, {supersedes} supersedes"
        );
        for s in [&mut fast, &mut slow] {
            s.flush_dedupe_index().unwrap();
        }
        sqlite_only(&mut slow);
        let a = store_all(&mut fast, second, first.len());
        assert!(
            !fast.overlay.borrow().complete,
            "a run on a store holding items"
        );
        let b = store_all(&mut slow, second, first.len());
        assert_eq!(a, b);
        assert_eq!(clusters(&fast), clusters(&slow));
    }

    /// A group whose transaction rolls back takes its overlay entries along: its items
    /// are found by no lookup, and copies of them stored afterwards are new stories.
    #[test]
    fn a_rolled_back_group_leaves_nothing_in_the_overlay() {
        let sources = corpus(3, 20);
        let mut s = Store::in_memory("example.org").unwrap();
        s.check_overlay = true;
        store_all(&mut s, &[vec![sources[0].clone()]], 0);
        let before = s.overlay.borrow().keys.ids.len();
        let deduper = Deduper::new(Default::default(), HashMap::new());
        let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        let failed = s.in_transaction(|s| -> Result<(), StoreError> {
            let source = sources[1][0].source.clone();
            s.upsert_source_items(&source, sources[1].clone(), now, |held, item| {
                deduper.decide(held, item)
            })?;
            // The second source of the group fails: the group rolls back.
            s.upsert_source_items(&sources[2][0].source, sources[2].clone(), now, |_, _| {
                Err(crate::dedupe::LookupError::new(std::fmt::Error))
            })?;
            Ok(())
        });
        assert!(failed.is_err());
        {
            let o = s.overlay.borrow();
            assert!(o.complete);
            assert_eq!(o.keys.ids.len(), before);
            for it in sources[1].iter().chain(&sources[2]) {
                assert_eq!(o.holds(&it.id), Some(false), "{}", it.id.0);
                assert!(o.held(&it.id).is_none(), "{}", it.id.0);
                for which in [Exact::Url, Exact::Guid, Exact::TextHash] {
                    let key = match which {
                        Exact::Url => it.canonical_url.clone().unwrap(),
                        Exact::Guid => it.guid.clone().unwrap(),
                        Exact::TextHash => it.fingerprint.text_hash.clone(),
                    };
                    assert!(!o.by_exact(which, &key).unwrap().contains(&it.id));
                }
            }
            assert!(o.sigs.values().all(|(id, _, _)| id.0.starts_with("s00:")));
            assert!(o.cache.keys().all(|id| id.0.starts_with("s00:")));
        }
        // Stored again (each source alone, as `Commit::group` does), with every answer
        // checked against SQLite.
        let again = store_all(
            &mut s,
            &[vec![sources[1].clone()], vec![sources[2].clone()]],
            1,
        );
        assert_eq!(again.len(), 40);
    }

    /// Another process committing meanwhile turns the overlay off for the run.
    #[test]
    fn another_writer_turns_the_overlay_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let sources = corpus(2, 5);
        let mut s = Store::open(&path, "example.org").unwrap();
        store_all(&mut s, &[vec![sources[0].clone()]], 0);
        assert!(s.overlay.borrow().complete);
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute("INSERT INTO meta (key, value) VALUES ('x', 'y')", [])
            .unwrap();
        store_all(&mut s, &[vec![sources[1].clone()]], 1);
        let o = s.overlay.borrow();
        assert!(!o.complete && !o.live && o.cache.is_empty());
    }
}
