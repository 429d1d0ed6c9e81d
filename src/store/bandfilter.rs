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
//! The bitmap is built lazily from the tables, and only once the lookups it would
//! save are worth a scan of the band table (a refresh adding a few items to a large
//! store never builds it). Keys of rolled-back or deleted rows stay set: only false
//! positives. [`super::Store::flush_dedupe_index`] drops it at the end of a run, so a
//! long-running daemon holds it only while a run is adding many items, and rows that
//! another process wrote meanwhile are seen by the next run's bitmap.

use rusqlite::Connection;

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
}

impl Bitmap {
    fn with_capacity(keys: u64) -> Bitmap {
        let bits = (keys.saturating_mul(BITS_PER_KEY))
            .clamp(MIN_BITS, MAX_BITS)
            .next_power_of_two();
        Bitmap {
            words: vec![0; (bits / 64) as usize],
            mask: bits - 1,
            keys: 0,
        }
    }

    fn slot(&self, key: i64) -> (usize, u64) {
        let bit = (key as u64) & self.mask;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn insert(&mut self, key: i64) {
        let (w, b) = self.slot(key);
        self.words[w] |= b;
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

    /// Every key in the band table (the pending rows are looked up in memory).
    fn build(conn: &Connection, expected: u64) -> rusqlite::Result<Bitmap> {
        let mut map = Bitmap::with_capacity(expected);
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
            *self = BandFilter::Warm(Bitmap::build(conn, rows)?);
        }
        let BandFilter::Warm(map) = self else {
            unreachable!("built above")
        };
        Ok(keys.iter().copied().filter(|&k| map.may_hold(k)).collect())
    }

    /// Records keys just written to the band table; doubles the bitmap (from the
    /// table, which holds these keys already) when it is getting full.
    pub(super) fn note(&mut self, conn: &Connection, keys: &[i64]) -> rusqlite::Result<()> {
        let BandFilter::Warm(map) = self else {
            return Ok(());
        };
        for &k in keys {
            map.insert(k);
        }
        if map.overloaded() {
            let doubled = (map.mask + 1) * 2 / BITS_PER_KEY;
            // Free the old bitmap before building the new one: both at once would be
            // the run's peak. If the build fails, the filter is simply cold again.
            *self = BandFilter::default();
            *self = BandFilter::Warm(Bitmap::build(conn, doubled)?);
        }
        Ok(())
    }

    /// Forgets the bitmap (the next run builds its own if it needs one).
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

    #[test]
    fn a_bitmap_never_misses_a_key_it_was_given_and_grows_before_it_fills() {
        let mut map = Bitmap::with_capacity(0);
        let bits = map.mask + 1;
        assert_eq!(bits, MIN_BITS);
        // Keys spread like fnv hashes; every one of them must be found.
        let keys: Vec<i64> = (0..bits / MAX_LOAD_DIVISOR + 1)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) as i64)
            .collect();
        for &k in &keys {
            map.insert(k);
        }
        assert!(keys.iter().all(|&k| map.may_hold(k)));
        assert!(map.overloaded(), "past one bit in 8 it asks to grow");
        let set: u32 = map.words.iter().map(|w| w.count_ones()).sum();
        let unseen = (0..10_000u64)
            .map(|i| (i.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ 0x5555) as i64)
            .filter(|&k| map.may_hold(k))
            .count();
        // About `set / bits` of unseen keys pass: the false-positive rate.
        let expected = 10_000.0 * set as f64 / bits as f64;
        assert!(
            (unseen as f64) < expected * 1.5 + 50.0,
            "{unseen} vs {expected}"
        );
    }
}
