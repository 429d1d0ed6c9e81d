//! A bitmap over LSH band keys, so a candidate lookup skips the band table for the
//! keys no signature there has.
//!
//! Most band keys of a new item are new: a story shares buckets only with its copies.
//! Without the bitmap, each of an item's 32 keys cost b-tree descents that found
//! nothing — on a 1,000-source cold build (when the pending rows were a table too),
//! 13 million queries and a tenth of the run. Band keys are already 64-bit hashes, so
//! one bit per key (its low bits) is the whole filter: a set bit may be a false
//! positive (then the query runs and finds nothing), a clear bit is a sure miss.
//!
//! The bitmap is taken up lazily, and only once the lookups it would save are worth
//! reading it (a refresh adding a few items to a large store never does). It is kept
//! in the store (`dedupe_band_filter`, schema 4), written with the band rows it covers,
//! in their transaction: building it meant a scan of the whole band table (6.4 million
//! rows and a second of CPU at 200,000 items held) in every run that added many items,
//! a cost that grew with history. A run reads the stored chunks and adds the keys of
//! the signatures stored since it was last written (by runs that never took it up, or
//! by another process), from their signatures; it is built from the band table only
//! when the store has none yet, or when it is getting full and doubles. Keys of
//! rolled-back or deleted rows stay set: only false positives.
//! [`super::Store::flush_dedupe_index`] drops it from memory at the end of a run, so a
//! long-running daemon holds it only while a run is adding many items.

use rusqlite::{params, Connection, OptionalExtension};

use crate::normalise::fingerprint;

/// A point query costs about as much as reading this many rows in a scan: the bitmap
/// is built once the queries made without it add up to a scan of the band table.
const QUERY_COST_IN_ROWS: u64 = 64;
/// Bits per key when the bitmap is (re)built, and the load at which it doubles: at
/// most one bit in 8 is set, so at most about 12 % of the new keys are queried anyway.
const BITS_PER_KEY: u64 = 16;
const MAX_LOAD_DIVISOR: u64 = 8;
pub(super) const MIN_BITS: u64 = 1 << 16;
/// 32 MiB. Past it the bitmap stops growing and only answers less often.
const MAX_BITS: u64 = 1 << 28;
/// Words per stored chunk (4 KiB): a run that adds a few keys rewrites a few chunks.
const CHUNK_WORDS: usize = 512;
const _: () = assert!(MIN_BITS as usize % (CHUNK_WORDS * 64) == 0);
/// `meta` key of the stored bitmap: `<bits> <keys> <through>`, where every signature
/// numbered up to `through` has its keys set.
const STORED: &str = "dedupe_band_filter";

/// `meta` key: every signature numbered up to this has its band rows in the band table.
/// Later ones were still pending when the process ended (a crash, a kill) and are
/// indexed again from their stored signatures when the store is next opened.
pub(super) const BANDS_THROUGH: &str = "dedupe_bands_through";

/// The watermark: every signature numbered up to it has its rows in the band table.
fn bands_through(conn: &Connection) -> Result<i64, rusqlite::Error> {
    let through: Option<i64> = conn
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1",
            [BANDS_THROUGH],
            |r| r.get(0),
        )
        .optional()?;
    match through {
        Some(n) => Ok(n),
        // Written when every upsert flushed its own rows: complete.
        None => conn.query_row("SELECT coalesce(max(n), 0) FROM dedupe_sig", [], |r| {
            r.get(0)
        }),
    }
}

#[derive(Debug)]
pub(super) enum BandFilter {
    /// Not built: every key is looked up. `probed` counts the keys looked up so far,
    /// `rows` estimates the band rows a build would read (asked once).
    Cold {
        probed: u64,
        rows: Option<u64>,
    },
    Warm(Bitmap),
}

/// Where a warm bitmap came from (for tests).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Origin {
    Stored,
    Built,
}

impl Default for BandFilter {
    fn default() -> Self {
        BandFilter::Cold {
            probed: 0,
            rows: None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Bitmap {
    words: Vec<u64>,
    /// `bits - 1`; `bits` is a power of two.
    mask: u64,
    /// Keys set since the build (with repeats), for the load check.
    keys: u64,
    /// Every signature numbered up to this has its keys set.
    through: i64,
    /// Chunks changed since the bitmap was read or written.
    dirty: Vec<bool>,
    #[cfg(test)]
    origin: Origin,
}

impl Bitmap {
    fn with_capacity(keys: u64) -> Bitmap {
        let bits = (keys.saturating_mul(BITS_PER_KEY))
            .clamp(MIN_BITS, MAX_BITS)
            .next_power_of_two();
        let words = (bits / 64) as usize;
        Bitmap {
            words: vec![0; words],
            mask: bits - 1,
            keys: 0,
            through: 0,
            // A new bitmap is written whole.
            dirty: vec![true; words / CHUNK_WORDS],
            #[cfg(test)]
            origin: Origin::Built,
        }
    }

    fn slot(&self, key: i64) -> (usize, u64) {
        let bit = (key as u64) & self.mask;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn insert(&mut self, key: i64) {
        let (w, b) = self.slot(key);
        if self.words[w] & b == 0 {
            self.words[w] |= b;
            self.dirty[w / CHUNK_WORDS] = true;
        }
        self.keys += 1;
    }

    fn may_hold(&self, key: i64) -> bool {
        let (w, b) = self.slot(key);
        self.words[w] & b != 0
    }

    fn overloaded(&self) -> bool {
        let bits = self.mask + 1;
        bits < MAX_BITS && self.keys > bits / MAX_LOAD_DIVISOR
    }

    /// The keys an overloaded bitmap is rebuilt for: those it holds, and at least
    /// twice what it was sized for. Not just twice: one flush of pending rows adds up
    /// to [`super::pending::PENDING_CAP`] keys at once, and a bitmap that only doubled
    /// trailed them (a cold build of 60,000 items ended with 1.9 million keys in
    /// 262,144 bits, every bit set, so every key was queried all the same).
    fn regrown_capacity(&self) -> u64 {
        ((self.mask + 1) * 2 / BITS_PER_KEY).max(self.keys)
    }

    /// Every key in the band table (the pending rows are looked up in memory): the
    /// signatures up to the band table's watermark.
    fn build(conn: &Connection, expected: u64) -> rusqlite::Result<Bitmap> {
        let mut map = Bitmap::with_capacity(expected);
        map.through = bands_through(conn)?;
        let mut stmt = conn.prepare("SELECT bucket FROM dedupe_band")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            map.insert(r.get(0)?);
        }
        tracing::debug!(
            keys = map.keys,
            bits = map.mask + 1,
            "built the band-key bitmap"
        );
        Ok(map)
    }

    /// The bitmap kept in the store, if there is a whole one.
    fn stored(conn: &Connection) -> rusqlite::Result<Option<Bitmap>> {
        let head: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [STORED], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(head) = head else {
            return Ok(None);
        };
        let parsed: Vec<u64> = head.split(' ').filter_map(|v| v.parse().ok()).collect();
        let [bits, keys, through] = parsed[..] else {
            return Ok(None);
        };
        if !bits.is_power_of_two() || !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Ok(None);
        }
        let mut map = Bitmap::with_capacity(0);
        map.words = vec![0; (bits / 64) as usize];
        map.mask = bits - 1;
        map.keys = keys;
        map.through = through as i64;
        let chunks = map.words.len() / CHUNK_WORDS;
        map.dirty = vec![false; chunks];
        let mut seen = 0;
        let mut stmt = conn.prepare("SELECT chunk, words FROM dedupe_band_filter")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (chunk, blob): (i64, Vec<u8>) = (r.get(0)?, r.get(1)?);
            let chunk = chunk as usize;
            if chunk >= chunks || blob.len() != CHUNK_WORDS * 8 {
                return Ok(None);
            }
            let words = &mut map.words[chunk * CHUNK_WORDS..(chunk + 1) * CHUNK_WORDS];
            for (w, b) in words.iter_mut().zip(blob.chunks_exact(8)) {
                *w = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            }
            seen += 1;
        }
        if seen != chunks {
            return Ok(None);
        }
        #[cfg(test)]
        {
            map.origin = Origin::Stored;
        }
        Ok(Some(map))
    }

    /// Sets the keys of the signatures stored after `through` (from their stored
    /// signatures; only this run's or another process's latest items).
    fn catch_up(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached("SELECT n, sig FROM dedupe_sig WHERE n > ?1")?;
        let mut rows = stmt.query([self.through])?;
        while let Some(r) = rows.next()? {
            let (n, blob): (i64, Vec<u8>) = (r.get(0)?, r.get(1)?);
            for key in fingerprint::band_keys(&fingerprint::from_blob(&blob)) {
                self.insert(key);
            }
            self.through = self.through.max(n);
        }
        Ok(())
    }

    /// Writes the chunks changed since the bitmap was read or last written.
    fn save(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let chunks = self.dirty.len() as i64;
        let mut put = conn.prepare_cached(
            "INSERT INTO dedupe_band_filter (chunk, words) VALUES (?1, ?2)
             ON CONFLICT(chunk) DO UPDATE SET words = excluded.words",
        )?;
        let mut blob = Vec::with_capacity(CHUNK_WORDS * 8);
        for (chunk, dirty) in self.dirty.iter_mut().enumerate() {
            if !std::mem::take(dirty) {
                continue;
            }
            blob.clear();
            for w in &self.words[chunk * CHUNK_WORDS..(chunk + 1) * CHUNK_WORDS] {
                blob.extend_from_slice(&w.to_le_bytes());
            }
            put.execute(params![chunk as i64, blob])?;
        }
        conn.prepare_cached("DELETE FROM dedupe_band_filter WHERE chunk >= ?1")?
            .execute([chunks])?;
        conn.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![
            STORED,
            format!("{} {} {}", self.mask + 1, self.keys, self.through)
        ])?;
        Ok(())
    }
}

impl BandFilter {
    /// The keys that may be held: all of them while cold (possibly building the
    /// bitmap first), else those whose bit is set.
    pub(super) fn narrow(&mut self, conn: &Connection, keys: &[i64]) -> rusqlite::Result<Vec<i64>> {
        if let BandFilter::Cold { probed, rows } = self {
            *probed += keys.len() as u64;
            let rows = match rows {
                Some(r) => *r,
                None => *rows.insert(estimate_rows(conn)?),
            };
            if probed.saturating_mul(QUERY_COST_IN_ROWS) < rows {
                return Ok(keys.to_vec());
            }
            let map = match Bitmap::stored(conn)? {
                Some(mut map) => {
                    map.catch_up(conn)?;
                    map
                }
                None => Bitmap::build(conn, rows)?,
            };
            *self = BandFilter::Warm(map);
        }
        let BandFilter::Warm(map) = self else {
            unreachable!("built above")
        };
        Ok(keys.iter().copied().filter(|&k| map.may_hold(k)).collect())
    }

    /// Called in the transaction that has just written band rows: a warm bitmap learns
    /// the keys of every signature stored since it was read (this run's, another
    /// process's), doubles (from the band table, which holds them all now) when it is
    /// getting full, and is written to the store with them. A cold one is left as it
    /// is stored: the next run to take it up catches up.
    pub(super) fn persist(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let BandFilter::Warm(map) = self else {
            return Ok(());
        };
        map.catch_up(conn)?;
        if map.overloaded() {
            let capacity = map.regrown_capacity();
            // Free the old bitmap before building the new one: both at once would be
            // the run's peak. If the build fails, the transaction rolls back and the
            // filter is simply cold again.
            *self = BandFilter::default();
            *self = BandFilter::Warm(Bitmap::build(conn, capacity)?);
        }
        let BandFilter::Warm(map) = self else {
            unreachable!("warm above")
        };
        map.save(conn)
    }

    /// Builds and stores the bitmap of a store that has none (made before it was kept,
    /// or new): once, when the store is opened, so no later run scans the band table
    /// for it.
    pub(super) fn store_if_missing(conn: &Connection) -> rusqlite::Result<()> {
        let stored = conn
            .prepare("SELECT 1 FROM meta WHERE key = ?1")?
            .exists([STORED])?;
        if !stored {
            Bitmap::build(conn, estimate_rows(conn)?)?.save(conn)?;
        }
        Ok(())
    }

    /// Forgets the bitmap (the next run reads it again if it needs it).
    pub(super) fn reset(&mut self) {
        *self = BandFilter::default();
    }

    /// The bitmap's size in bits, if it is built.
    #[cfg(test)]
    pub(super) fn bits(&self) -> Option<u64> {
        match self {
            BandFilter::Warm(map) => Some(map.mask + 1),
            BandFilter::Cold { .. } => None,
        }
    }

    /// Whether the warm bitmap was read from the store or built from the band table.
    #[cfg(test)]
    pub(super) fn origin(&self) -> Option<Origin> {
        match self {
            BandFilter::Warm(map) => Some(map.origin),
            BandFilter::Cold { .. } => None,
        }
    }

    /// Whether the warm bitmap may hold `key`.
    #[cfg(test)]
    pub(super) fn may_hold(&self, key: i64) -> Option<bool> {
        match self {
            BandFilter::Warm(map) => Some(map.may_hold(key)),
            BandFilter::Cold { .. } => None,
        }
    }
}

/// Band rows held, from the signature count (a rowid maximum, not a count of the
/// band table, which would read it all).
fn estimate_rows(conn: &Connection) -> rusqlite::Result<u64> {
    let sigs: i64 = conn.query_row("SELECT coalesce(max(n), 0) FROM dedupe_sig", [], |r| {
        r.get(0)
    })?;
    Ok(sigs.max(0) as u64 * fingerprint::BANDS as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(i: u64) -> i64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15) as i64
    }

    /// How many of 10,000 keys never inserted (spread otherwise) `map` lets through.
    fn unseen_passing(map: &Bitmap) -> usize {
        (0..10_000u64)
            .map(|i| (i.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 0x5555) as i64)
            .filter(|&k| map.may_hold(k))
            .count()
    }

    /// A flush of a million pending rows into a bitmap sized for a few: rebuilt for
    /// the keys it then holds, it is not overloaded again, and it answers for
    /// unseen keys as a filter should (mostly no), where a bitmap that only doubled
    /// would be saturated.
    #[test]
    fn an_overloaded_bitmap_is_rebuilt_for_the_keys_it_holds() {
        let mut map = Bitmap::with_capacity(0);
        let keys = super::super::pending::PENDING_CAP as u64;
        for i in 0..keys {
            map.insert(spread(i));
        }
        assert!(map.overloaded());
        let mut regrown = Bitmap::with_capacity(map.regrown_capacity());
        for i in 0..keys {
            regrown.insert(spread(i));
        }
        assert!(
            !regrown.overloaded(),
            "{} bits for {keys} keys",
            regrown.mask + 1
        );
        let unseen = unseen_passing(&regrown);
        assert!(unseen < 1_000, "{unseen} of 10,000 unseen keys pass");
    }

    #[test]
    fn a_bitmap_never_misses_a_key_it_was_given_and_grows_before_it_fills() {
        let mut map = Bitmap::with_capacity(0);
        let bits = map.mask + 1;
        assert_eq!(bits, MIN_BITS);
        // Keys spread like fnv hashes; every one of them must be found.
        let keys: Vec<i64> = (0..bits / MAX_LOAD_DIVISOR + 1).map(spread).collect();
        for &k in &keys {
            map.insert(k);
        }
        assert!(keys.iter().all(|&k| map.may_hold(k)));
        assert!(map.overloaded(), "past one bit in 8 it asks to grow");
        let set: u32 = map.words.iter().map(|w| w.count_ones()).sum();
        let unseen = unseen_passing(&map);
        // About `set / bits` of unseen keys pass: the false-positive rate.
        let expected = 10_000.0 * set as f64 / bits as f64;
        assert!(
            (unseen as f64) < expected * 1.5 + 50.0,
            "{unseen} vs {expected}"
        );
    }
}
