//! Text fingerprints for near-duplicate detection: word shingles → MinHash signature.
//!
//! The hash family is ours and frozen by [`VERSION`] and a golden test, because
//! signatures are stored: a crate upgrade must never silently change their meaning.

use crate::model::Fingerprint;

/// Bump when shingling or hashing changes; stored signatures of other versions are
/// recomputed from the stored text.
pub const VERSION: u32 = 1;
/// Signature length (hash functions).
pub const HASHES: usize = 128;
/// Words per shingle.
pub const SHINGLE_WORDS: usize = 5;

/// FNV-1a, 64 bit: tiny, fixed, and good enough to spread shingles before MinHash mixing.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64: derives the fixed per-function coefficients from a constant seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn coefficients() -> &'static [(u64, u64); HASHES] {
    static C: std::sync::OnceLock<[(u64, u64); HASHES]> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let mut s = 0x6665_6564_7765_726b; // "feedwerk"
        let mut c = [(0, 0); HASHES];
        for slot in c.iter_mut() {
            *slot = (splitmix(&mut s) | 1, splitmix(&mut s));
        }
        c
    })
}

/// Hashes of the distinct word shingles of `text` (already normalised for matching).
pub fn shingles(text: &str) -> Vec<u64> {
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    let mut out: Vec<u64> = if words.len() < SHINGLE_WORDS {
        if words.is_empty() {
            Vec::new()
        } else {
            vec![fnv1a(words.join(" ").as_bytes())]
        }
    } else {
        words
            .windows(SHINGLE_WORDS)
            .map(|w| fnv1a(w.join(" ").as_bytes()))
            .collect()
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Fingerprint of normalised text.
pub fn fingerprint(text: &str) -> Fingerprint {
    let sh = shingles(text);
    let mut sig = vec![u32::MAX; if sh.is_empty() { 0 } else { HASHES }];
    let coeff = coefficients();
    for &h in &sh {
        for (slot, (a, b)) in sig.iter_mut().zip(coeff.iter()) {
            let v = (a.wrapping_mul(h).wrapping_add(*b) >> 32) as u32;
            if v < *slot {
                *slot = v;
            }
        }
    }
    Fingerprint {
        version: VERSION,
        text_hash: blake3::hash(text.as_bytes()).to_hex()[..32].to_owned(),
        minhash: sig,
        shingles: sh.len() as u32,
    }
}

/// Estimated Jaccard similarity of two signatures.
pub fn jaccard(a: &Fingerprint, b: &Fingerprint) -> f64 {
    if a.minhash.is_empty() || a.minhash.len() != b.minhash.len() {
        return 0.0;
    }
    let same = a
        .minhash
        .iter()
        .zip(&b.minhash)
        .filter(|(x, y)| x == y)
        .count();
    same as f64 / a.minhash.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_of_a_fixed_text_never_changes() {
        let f = fingerprint("die stadt und ihre bürger arbeiten gemeinsam an der prävention");
        assert_eq!(f.minhash.len(), HASHES);
        assert_eq!(f.shingles, 6);
        // Golden values: a change here means stored signatures changed meaning; bump VERSION.
        assert_eq!(&f.minhash[..4], &GOLDEN);
    }

    const GOLDEN: [u32; 4] = [51037414, 719347022, 60597116, 566749654];

    #[test]
    fn similar_texts_score_high_and_unrelated_low() {
        let a = fingerprint(&crate::normalise::text::for_matching(
            "Die Stadt Hannover lädt zur Fachtagung über Prävention im Quartier ein. Anmeldung bis Ende Mai.",
        ));
        let b = fingerprint(&crate::normalise::text::for_matching(
            "Die Stadt Hannover lädt zur Fachtagung über Prävention im Quartier ein. Anmeldung bis Ende Mai!",
        ));
        let c = fingerprint(&crate::normalise::text::for_matching(
            "Newsletter elf mit Berichten aus Augsburg, Düsseldorf und Stuttgart zum Thema Sicherheit.",
        ));
        assert!(jaccard(&a, &b) > 0.9);
        assert!(jaccard(&a, &c) < 0.1);
    }
}
