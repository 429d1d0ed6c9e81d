//! Text fingerprints for near-duplicate detection: word shingles → MinHash signature →
//! locality-sensitive hashing (LSH) band keys.
//!
//! The hash family is ours and frozen by [`VERSION`] and a golden test, because
//! signatures and band keys are stored: a crate upgrade must never silently change
//! their meaning (this is why we do not use gaoya, whose coefficients come from a
//! `rand` stream that is not promised stable). Deciding what counts as a duplicate is
//! left to `dedupe`; storing and looking up band keys to `store`.

use crate::model::Fingerprint;

/// Bump when shingling or hashing changes; stored signatures of other versions are
/// recomputed from the stored text.
pub const VERSION: u32 = 1;
/// Bodies shorter than this (normalised characters) are too generic to match as a
/// whole: their text hash is not used to find copies.
pub const MIN_TEXT_FOR_HASH: usize = 80;
/// Signature length (hash functions).
pub const HASHES: usize = 128;
/// Words per shingle.
pub const SHINGLE_WORDS: usize = 5;

/// LSH layout: `BANDS` bands of `ROWS` signature values each (`BANDS * ROWS == HASHES`).
/// Two texts become candidates when one band agrees; the probability is
/// `1 - (1 - J^ROWS)^BANDS`: 0.87 at Jaccard 0.5, 0.99 at 0.6, 0.9998 at 0.7, and
/// 5e-6 at 0.02 (unrelated texts), so lookups stay near-linear.
pub const BANDS: usize = 32;
pub const ROWS: usize = 4;
const _: () = assert!(BANDS * ROWS == HASHES);

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

/// The coefficients of [`coefficients`], multipliers and offsets apart, so the loop of
/// [`minhash`] reads each as one contiguous array.
fn split_coefficients() -> &'static ([u64; HASHES], [u64; HASHES]) {
    static C: std::sync::OnceLock<([u64; HASHES], [u64; HASHES])> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let (mut a, mut b) = ([0; HASHES], [0; HASHES]);
        for (i, (x, y)) in coefficients().iter().enumerate() {
            a[i] = *x;
            b[i] = *y;
        }
        (a, b)
    })
}

/// Lowers each slot of `sig` to the least of its hash function over the shingles. The
/// loop is a quarter of normalising an item and the compiler vectorises it; on a CPU
/// with AVX2 the same code runs compiled for it (four 64-bit lanes instead of two): the
/// same arithmetic, so the same signature.
fn minhash(shingles: &[u64], sig: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { minhash_avx2(shingles, sig) };
        return;
    }
    minhash_portable(shingles, sig);
}

/// The coefficients of [`coefficients`] cut into 32-bit halves, as [`minhash_avx2`]
/// reads them: with `a = aH·2³² + aL`, `b = bH·2³² + bL` and `h = hH·2³² + hL`, bits
/// 32–63 of `a·h + b` are `hi32(aL·hL + bL) + aL·hH + aH·hL + bH` (mod 2³²), and
/// `aL·hL + bL` cannot overflow 64 bits. So each function takes one 32×32→64 product
/// and two 32-bit ones, where the 64-bit product of the portable loop takes three
/// 32×32→64 products and a shift; the lanes are 32 bits wide (eight to a register).
#[cfg(target_arch = "x86_64")]
struct Halves {
    a_lo: [u32; HASHES],
    a_hi: [u32; HASHES],
    b_hi: [u32; HASHES],
    /// `aL` and `bL` of the odd-numbered functions, and `bL` of the even-numbered ones,
    /// each widened to 64 bits (the 32×32→64 product reads the low half of each 64-bit
    /// lane; `aL` of the even ones is read from `a_lo` as it is).
    a_lo_odd: [u64; HASHES / 2],
    b_lo_odd: [u64; HASHES / 2],
    b_lo_even: [u64; HASHES / 2],
}

#[cfg(target_arch = "x86_64")]
fn halves() -> &'static Halves {
    static H: std::sync::OnceLock<Halves> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let (a, b) = split_coefficients();
        let mut h = Halves {
            a_lo: [0; HASHES],
            a_hi: [0; HASHES],
            b_hi: [0; HASHES],
            a_lo_odd: [0; HASHES / 2],
            b_lo_odd: [0; HASHES / 2],
            b_lo_even: [0; HASHES / 2],
        };
        for k in 0..HASHES {
            h.a_lo[k] = a[k] as u32;
            h.a_hi[k] = (a[k] >> 32) as u32;
            h.b_hi[k] = (b[k] >> 32) as u32;
        }
        for m in 0..HASHES / 2 {
            h.a_lo_odd[m] = u64::from(a[2 * m + 1] as u32);
            h.b_lo_odd[m] = u64::from(b[2 * m + 1] as u32);
            h.b_lo_even[m] = u64::from(b[2 * m] as u32);
        }
        h
    })
}

/// [`minhash_portable`]'s arithmetic on 32-bit halves (see [`Halves`]), eight functions
/// to a register: the same values, in about half the instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn minhash_avx2(shingles: &[u64], sig: &mut [u32]) {
    use std::arch::x86_64::*;
    let c = halves();
    let sig: &mut [u32; HASHES] = sig.try_into().expect("a signature has HASHES slots");
    // SAFETY (all loads and stores below): every index is `8 * g .. 8 * g + 8` of an
    // array of `HASHES` u32s, or `4 * g .. 4 * g + 4` of one of `HASHES / 2` u64s, with
    // `g < HASHES / 8`; unaligned loads and stores take any address.
    // Macros rather than closures: a closure would not inherit the AVX2 target feature,
    // and the intrinsics in it would not be inlined.
    macro_rules! load32 {
        ($v:expr, $g:expr) => {
            _mm256_loadu_si256($v.as_ptr().add(8 * $g).cast())
        };
    }
    macro_rules! load64 {
        ($v:expr, $g:expr) => {
            _mm256_loadu_si256($v.as_ptr().add(4 * $g).cast())
        };
    }
    for &h in shingles {
        let h_lo = h as u32;
        let h_hi = (h >> 32) as u32;
        let h_lo32 = _mm256_set1_epi32(h_lo as i32);
        let h_hi32 = _mm256_set1_epi32(h_hi as i32);
        let h_lo64 = _mm256_set1_epi64x(i64::from(h_lo));
        for g in 0..HASHES / 8 {
            let a_lo = load32!(&c.a_lo, g);
            // hi32(aL·hL + bL), even functions in the even lanes, odd ones in the odd.
            let even = _mm256_add_epi64(_mm256_mul_epu32(a_lo, h_lo64), load64!(&c.b_lo_even, g));
            let odd = _mm256_add_epi64(
                _mm256_mul_epu32(load64!(&c.a_lo_odd, g), h_lo64),
                load64!(&c.b_lo_odd, g),
            );
            let high = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
            // aL·hH + aH·hL + bH, mod 2³².
            let cross = _mm256_add_epi32(
                _mm256_add_epi32(
                    _mm256_mullo_epi32(a_lo, h_hi32),
                    _mm256_mullo_epi32(load32!(&c.a_hi, g), h_lo32),
                ),
                load32!(&c.b_hi, g),
            );
            let v = _mm256_add_epi32(high, cross);
            let slot = sig.as_mut_ptr().add(8 * g).cast::<__m256i>();
            _mm256_storeu_si256(slot, _mm256_min_epu32(v, _mm256_loadu_si256(slot)));
        }
    }
}

#[inline(always)]
fn minhash_portable(shingles: &[u64], sig: &mut [u32]) {
    let (a, b) = split_coefficients();
    let sig: &mut [u32; HASHES] = sig.try_into().expect("a signature has HASHES slots");
    for &h in shingles {
        for k in 0..HASHES {
            let v = (a[k].wrapping_mul(h).wrapping_add(b[k]) >> 32) as u32;
            sig[k] = sig[k].min(v);
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Hashes of the distinct word shingles of `text` (already normalised for matching):
/// FNV-1a of each run of [`SHINGLE_WORDS`] consecutive words joined by single spaces
/// (words are what `split(' ')` gives, without the empty ones), or of all the words
/// when there are fewer. Sorted, without duplicates.
///
/// One pass over the bytes: the hashes of the [`SHINGLE_WORDS`] windows a byte belongs
/// to are advanced side by side (slot `k % SHINGLE_WORDS` holds the window that begins
/// at word `k`), and a window is complete at the end of its last word. Collecting the
/// words and hashing each window on its own was a third of shingling (issue 16).
pub fn shingles(text: &str) -> Vec<u64> {
    let mut out = Vec::with_capacity(text.len() / 6 + 1);
    let mut h = [FNV_OFFSET; SHINGLE_WORDS];
    // Words seen so far; whether the last byte read was inside a word.
    let mut words = 0usize;
    let mut in_word = false;
    for &b in text.as_bytes() {
        if b == b' ' {
            if in_word {
                in_word = false;
                words += 1;
                if words >= SHINGLE_WORDS {
                    // The window of words `words - 5 .. words` is complete.
                    out.push(h[words % SHINGLE_WORDS]);
                }
            }
            continue;
        }
        if !in_word {
            in_word = true;
            if words > 0 {
                // The space that joins this word to the windows already open.
                for v in &mut h {
                    *v = (*v ^ u64::from(b' ')).wrapping_mul(FNV_PRIME);
                }
            }
            // This word opens a window in the slot of the one that just closed.
            h[words % SHINGLE_WORDS] = FNV_OFFSET;
        }
        for v in &mut h {
            *v = (*v ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    if in_word {
        words += 1;
        if words >= SHINGLE_WORDS {
            out.push(h[words % SHINGLE_WORDS]);
        }
    }
    if (1..SHINGLE_WORDS).contains(&words) {
        // Fewer words than a shingle: one shingle of them all (the window of word 0).
        out.push(h[0]);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Fingerprint of normalised text.
pub fn fingerprint(text: &str) -> Fingerprint {
    let sh = shingles(text);
    let mut sig = vec![u32::MAX; if sh.is_empty() { 0 } else { HASHES }];
    if !sh.is_empty() {
        minhash(&sh, &mut sig);
    }
    Fingerprint {
        version: VERSION,
        text_hash: blake3::hash(text.as_bytes()).to_hex()[..32].to_owned(),
        minhash: sig,
        shingles: sh.len() as u32,
    }
}

/// The LSH bucket keys of a signature, one per band. The band index is hashed in, so
/// equal values in different bands never collide.
pub fn band_keys(minhash: &[u32]) -> Vec<i64> {
    if minhash.len() != HASHES {
        return Vec::new();
    }
    minhash
        .chunks(ROWS)
        .enumerate()
        .map(|(band, rows)| {
            let mut bytes = Vec::with_capacity(4 + ROWS * 4);
            bytes.extend_from_slice(&(band as u32).to_le_bytes());
            for r in rows {
                bytes.extend_from_slice(&r.to_le_bytes());
            }
            fnv1a(&bytes) as i64
        })
        .collect()
}

/// A signature as stored (little-endian `u32`s).
pub fn to_blob(minhash: &[u32]) -> Vec<u8> {
    minhash.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn from_blob(blob: &[u8]) -> Vec<u32> {
    blob.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Exact overlap of two texts' shingle sets: (Jaccard, containment of the smaller set
/// in the larger). Used to verify LSH candidates, which are few.
pub fn overlap(a: &[u64], b: &[u64]) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (0.0, 0.0);
    }
    let (mut i, mut j, mut both) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - both;
    let smaller = a.len().min(b.len());
    (both as f64 / union as f64, both as f64 / smaller as f64)
}

/// The form of a title used to find same-title copies: normalised like body text.
pub fn title_key(title: &str) -> String {
    super::text::for_matching(title)
}

/// The parts of a title that has a subtitle or a prefix, each as a [`title_key`]:
/// "Frankfurt: Sicherheit im Bahnhofsviertel" → `frankfurt`…, `sicherheit im
/// bahnhofsviertel`. Split at `:`, `|` and a spaced dash (` – `, ` — `, ` - `); parts of
/// one word ("Frankfurt", "Exklusiv") are dropped, since they name a place or a rubric,
/// not a story. Empty for a title with no such separator.
pub fn title_parts(title: &str) -> Vec<String> {
    let mut text = title.to_owned();
    for sep in [" – ", " — ", " - ", "|"] {
        text = text.replace(sep, ":");
    }
    let mut parts: Vec<String> = text
        .split(':')
        .map(title_key)
        .filter(|k| k.split(' ').count() >= 2)
        .collect();
    if text.split(':').filter(|p| !p.trim().is_empty()).count() < 2 {
        return Vec::new();
    }
    parts.sort();
    parts.dedup();
    parts
}

/// Estimated Jaccard similarity of two fingerprints.
pub fn jaccard(a: &Fingerprint, b: &Fingerprint) -> f64 {
    estimate_jaccard(&a.minhash, &b.minhash)
}

/// Estimated Jaccard similarity of two signatures: the share of equal minima.
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_splits_at_its_subtitle_or_prefix_into_parts_of_two_words_or_more() {
        assert_eq!(
            title_parts("Frankfurt: Sicherheit im Bahnhofsviertel"),
            ["sicherheit im bahnhofsviertel"]
        );
        assert_eq!(
            title_parts("Niedersachsen: Förderprogramm für Präventionsräte – jetzt bewerben"),
            ["förderprogramm für präventionsräte", "jetzt bewerben"]
        );
        assert!(title_parts("Night-time economy and safety").is_empty());
        assert!(title_parts("Sicherheit im Bahnhofsviertel").is_empty());
    }

    #[test]
    fn signature_of_a_fixed_text_never_changes() {
        let f = fingerprint("die stadt und ihre bürger arbeiten gemeinsam an der prävention");
        assert_eq!(f.minhash.len(), HASHES);
        assert_eq!(f.shingles, 6);
        // Golden values: a change here means stored signatures changed meaning; bump VERSION.
        assert_eq!(&f.minhash[..4], &GOLDEN);
    }

    #[test]
    fn shingle_hashes_equal_the_hash_of_the_joined_words() {
        for text in [
            "a",
            "eins zwei",
            "die stadt und ihre bürger arbeiten gemeinsam",
        ] {
            assert_eq!(shingles(text), shingles_by_windows(text), "{text}");
        }
    }

    /// Shingling as it was written before the one-pass loop (issue 16): the words
    /// collected, each window joined and hashed on its own.
    fn shingles_by_windows(text: &str) -> Vec<u64> {
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

    proptest::proptest! {
        #[test]
        fn one_pass_shingles_equal_the_hashes_of_the_joined_windows(
            text in "[ ab]{0,60}",
            words in proptest::collection::vec("[a-zäß0-9]{0,6}", 0..30),
            spaces in proptest::collection::vec(1usize..3, 0..30),
        ) {
            proptest::prop_assert_eq!(shingles(&text), shingles_by_windows(&text));
            // Words of arbitrary letters with runs of spaces between, before and after.
            let mut t = String::new();
            for (w, n) in words.iter().zip(spaces.iter().chain(std::iter::repeat(&1))) {
                t.push_str(&" ".repeat(*n - 1));
                t.push_str(w);
                t.push(' ');
            }
            proptest::prop_assert_eq!(shingles(&t), shingles_by_windows(&t));
            let t = t.trim_end();
            proptest::prop_assert_eq!(shingles(t), shingles_by_windows(t));
        }
    }

    #[test]
    fn every_minhash_path_gives_the_same_signature() {
        let text = crate::normalise::text::for_matching(
            &"Die Stadt lädt zur Fachtagung über Prävention im Quartier ein, Anmeldung bis Mai. "
                .repeat(9),
        );
        let sh = shingles(&text);
        let mut portable = vec![u32::MAX; HASHES];
        minhash_portable(&sh, &mut portable);
        // The loop as it was written before it was split out (issue 16).
        let mut reference = vec![u32::MAX; HASHES];
        for &h in &sh {
            for (slot, (a, b)) in reference.iter_mut().zip(coefficients().iter()) {
                let v = (a.wrapping_mul(h).wrapping_add(*b) >> 32) as u32;
                if v < *slot {
                    *slot = v;
                }
            }
        }
        assert_eq!(portable, reference);
        let mut dispatched = vec![u32::MAX; HASHES];
        minhash(&sh, &mut dispatched);
        assert_eq!(dispatched, reference);
    }

    proptest::proptest! {
        /// The AVX2 loop on 32-bit halves gives the portable loop's signature for any
        /// shingle hashes (the halves' carries and wrap-arounds included).
        #[test]
        fn the_dispatched_minhash_equals_the_portable_one(
            sh in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..40),
            extremes in proptest::collection::vec(proptest::sample::select(vec![
                0u64, 1, u64::MAX, u64::MAX - 1, 1 << 32, (1 << 32) - 1, u64::from(u32::MAX) << 32,
            ]), 0..6),
        ) {
            let sh: Vec<u64> = sh.into_iter().chain(extremes).collect();
            let mut portable = vec![u32::MAX; HASHES];
            minhash_portable(&sh, &mut portable);
            let mut dispatched = vec![u32::MAX; HASHES];
            minhash(&sh, &mut dispatched);
            proptest::prop_assert_eq!(dispatched, portable);
        }
    }

    #[test]
    fn band_keys_of_a_fixed_text_never_change() {
        let f = fingerprint("die stadt und ihre bürger arbeiten gemeinsam an der prävention");
        let keys = band_keys(&f.minhash);
        assert_eq!(keys.len(), BANDS);
        // Golden: stored band keys must keep their meaning; bump VERSION if this changes.
        assert_eq!(&keys[..2], &GOLDEN_BANDS);
        assert_eq!(from_blob(&to_blob(&f.minhash)), f.minhash);
    }

    const GOLDEN_BANDS: [i64; 2] = [2982325702860570530, 6978404281942731768];

    #[test]
    fn overlap_measures_jaccard_and_containment() {
        let long = shingles("a b c d e f g h i j k l m n o p");
        let teaser = shingles("a b c d e f g h");
        let (j, c) = overlap(&teaser, &long);
        assert_eq!(c, 1.0);
        assert!((j - 4.0 / 12.0).abs() < 1e-9, "{j}");
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
