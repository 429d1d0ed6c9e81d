//! The LSH band rows this process has made and not yet written to the band table: an
//! in-memory index of the signatures a run adds, so the items of one run find each
//! other by hash-map probes instead of SQLite queries, and the band table on disk is
//! written once per run (or per [`PENDING_CAP`] rows) in one pass in bucket order.
//!
//! The rows belong to the SQLite transaction that stored their signatures and follow
//! it: [`Pending::mark`] before it, [`Pending::undo_to`] when it rolls back. A crash
//! loses them, never the signatures, which were committed with their items: the next
//! open indexes the signatures numbered past the watermark again
//! (`dedup::recover_bands`), so the band table never stays behind the items. What the
//! band table on disk holds is `dedup`'s; this module never touches SQLite.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Band rows kept in memory before they are written to the band table. Band keys are
/// hashes, so every write to the table dirties leaves all over it, however few rows
/// it adds: written per source, a large first build rewrote most of a 110 MB table a
/// few hundred times over. 2^20 rows (32,768 items; about 40 bytes a row, 40 MiB)
/// keep a medium first build (10,000 items) in memory to the end, and bound what a
/// large one holds whatever the store holds.
pub const PENDING_CAP: usize = 1 << 20;

/// A removed row's signature number.
const GONE: i64 = -1;
/// No earlier row in the bucket.
const NONE: u32 = u32::MAX;

/// Band keys are already 64-bit hashes (`fingerprint::band_keys`): hashing them again
/// buys nothing.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_i64(&mut self, key: i64) {
        self.0 = key as u64;
    }
}

/// Rows as a log with one chain per bucket: three words a row, whatever the bucket
/// sizes (nearly every bucket has one member).
#[derive(Default)]
pub(super) struct Pending {
    /// Every row in the order written: (bucket, signature number, or [`GONE`]).
    rows: Vec<(i64, i64)>,
    /// For each row, the previous row of its bucket.
    prev: Vec<u32>,
    /// Each bucket's newest row.
    newest: HashMap<i64, u32, BuildHasherDefault<KeyHasher>>,
    /// Rows removed since the last [`Pending::clear`], with the number each had, so a
    /// rollback can put them back.
    removed: Vec<(u32, i64)>,
}

/// Where the rows stood when a transaction began.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    rows: usize,
    removed: usize,
}

impl Pending {
    /// Rows held (removed ones included until the next clear).
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn is_full(&self) -> bool {
        self.rows.len() >= PENDING_CAP
    }

    /// Adds signature `n`'s rows, one per band key.
    pub(super) fn add(&mut self, n: i64, keys: &[i64]) {
        for &key in keys {
            let at = u32::try_from(self.rows.len()).expect("PENDING_CAP fits in u32");
            let before = self.newest.insert(key, at).unwrap_or(NONE);
            self.rows.push((key, n));
            self.prev.push(before);
        }
    }

    /// Takes signature `n`'s rows out (its item was indexed again under a new text).
    /// Returns whether it had any.
    pub(super) fn remove(&mut self, n: i64, keys: &[i64]) -> bool {
        let mut found = false;
        for &key in keys {
            let mut at = self.newest.get(&key).copied().unwrap_or(NONE);
            while at != NONE {
                let row = &mut self.rows[at as usize];
                if row.1 == n {
                    row.1 = GONE;
                    self.removed.push((at, n));
                    found = true;
                    break;
                }
                at = self.prev[at as usize];
            }
        }
        found
    }

    /// Up to `cap` signatures in `key`'s bucket, newest first.
    pub(super) fn members(&self, key: i64, cap: usize, out: &mut Vec<i64>) {
        let mut at = self.newest.get(&key).copied().unwrap_or(NONE);
        let mut taken = 0;
        while at != NONE && taken < cap {
            let n = self.rows[at as usize].1;
            if n != GONE {
                out.push(n);
                taken += 1;
            }
            at = self.prev[at as usize];
        }
    }

    pub(super) fn mark(&self) -> Mark {
        Mark {
            rows: self.rows.len(),
            removed: self.removed.len(),
        }
    }

    /// Forgets what was added and removed since `mark`: its transaction rolled back.
    pub(super) fn undo_to(&mut self, mark: Mark) {
        for (at, n) in self
            .removed
            .drain(mark.removed.min(self.removed.len())..)
            .rev()
        {
            self.rows[at as usize].1 = n;
        }
        while self.rows.len() > mark.rows {
            let (key, _) = self.rows.pop().expect("longer than the mark");
            match self.prev.pop().expect("one per row") {
                NONE => self.newest.remove(&key),
                before => self.newest.insert(key, before),
            };
        }
    }

    /// The live rows in bucket order, as the band table wants them written.
    pub(super) fn sorted_rows(&self) -> Vec<(i64, i64)> {
        let mut rows: Vec<(i64, i64)> = self.rows.iter().copied().filter(|r| r.1 != GONE).collect();
        rows.sort_unstable();
        rows
    }

    /// The smallest signature number held, if any.
    pub(super) fn lowest(&self) -> Option<i64> {
        self.rows.iter().map(|r| r.1).filter(|&n| n != GONE).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_newest_first_and_a_rollback_restores_what_was_there() {
        let mut p = Pending::default();
        p.add(1, &[10, 20]);
        p.add(2, &[10, 30]);
        let members = |p: &Pending, key| {
            let mut out = Vec::new();
            p.members(key, 64, &mut out);
            out
        };
        assert_eq!(members(&p, 10), vec![2, 1]);
        let mark = p.mark();
        p.add(3, &[10, 20]);
        assert!(p.remove(1, &[10, 20]));
        assert_eq!(members(&p, 10), vec![3, 2]);
        assert_eq!(members(&p, 20), vec![3]);
        p.undo_to(mark);
        assert_eq!(members(&p, 10), vec![2, 1]);
        assert_eq!(members(&p, 20), vec![1]);
        assert_eq!(members(&p, 30), vec![2]);
        assert!(members(&p, 40).is_empty());
        assert_eq!(p.sorted_rows(), vec![(10, 1), (10, 2), (20, 1), (30, 2)]);
        let mut capped = Vec::new();
        p.members(10, 1, &mut capped);
        assert_eq!(capped, vec![2]);
    }
}
