//! Language tags: declared ones cleaned to BCP 47 form, missing ones detected.

/// At most `max` bytes of `text`, ending at a char boundary and, where there is one in
/// the second half, before a whitespace (so no word is cut into a false trigram).
fn prefix_at_word(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    match head.rfind(char::is_whitespace) {
        Some(ws) if ws >= max / 2 => &head[..ws],
        _ => head,
    }
}

/// A declared language → BCP 47 in its canonical case: `de_DE`, `DE-de`, `en-gb` →
/// `de-DE`, `en-GB`; `zh-hant-tw` → `zh-Hant-TW`; `es-419` stays. Variants and
/// extensions are dropped (nobody filters on them). A few language *names* partners put
/// in `<language>` are mapped (`German`, `Deutsch`, `English`, `français`); anything else
/// that is not a tag is refused, so detection gets its turn.
pub fn normalise_tag(raw: &str) -> Option<String> {
    let raw = raw.trim().replace('_', "-");
    let named = match raw.to_lowercase().as_str() {
        "german" | "deutsch" => Some("de"),
        "english" => Some("en"),
        "french" | "français" | "francais" => Some("fr"),
        "dutch" | "nederlands" => Some("nl"),
        "italian" | "italiano" => Some("it"),
        "spanish" | "español" | "espanol" => Some("es"),
        "polish" | "polski" => Some("pl"),
        _ => None,
    };
    if let Some(n) = named {
        return Some(n.to_owned());
    }
    let mut parts = raw.split('-');
    let lang = parts.next()?.to_ascii_lowercase();
    if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = lang;
    let mut next = parts.next();
    if let Some(script) =
        next.filter(|p| p.len() == 4 && p.chars().all(|c| c.is_ascii_alphabetic()))
    {
        out.push('-');
        out.push_str(&script[..1].to_ascii_uppercase());
        out.push_str(&script[1..].to_ascii_lowercase());
        next = parts.next();
    }
    match next {
        Some(r) if r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()) => {
            out.push('-');
            out.push_str(&r.to_ascii_uppercase());
        }
        Some(r) if r.len() == 3 && r.chars().all(|c| c.is_ascii_digit()) => {
            out.push('-');
            out.push_str(r);
        }
        _ => {}
    }
    Some(out)
}

/// How much of a text detection looks at. Trigram statistics settle within a few
/// hundred characters, while whatlang's cost grows with the whole text: articles of
/// several kilobytes made detection a tenth of a build's time for no better answer.
const DETECT_PREFIX: usize = 1024;

/// Detects the language of `text` (whatlang) from its first [`DETECT_PREFIX`] bytes,
/// cut at a word; `None` when unsure or too short.
pub fn detect(text: &str) -> Option<String> {
    let text = prefix_at_word(text, DETECT_PREFIX);
    if text.chars().filter(|c| c.is_alphabetic()).count() < 40 {
        return None;
    }
    let (lang, reliable, _) = detect_raw(text)?;
    if !reliable {
        return None;
    }
    code(lang)
}

/// Letters a text needs before detection may overrule a feed's declared language, and
/// the whatlang confidence it needs then. A feed-level `<language>` is one statement for
/// every item, often a CMS default, so a text plainly in another language is filed by
/// its own; but a short item ("Termine", a title and a date) says too little, and a
/// short English item in an English feed must never be refiled. Measured on the de, en
/// and fr texts of the tests below: whatlang gives 1.0 to every text it calls reliable
/// from about 90 letters on (and 0.04–0.2 to the short ones), so its confidence alone
/// separates little; the letter floor and the function words ([`overrules`]) decide.
const OVERRULE_MIN_LETTERS: usize = 100;
const OVERRULE_MIN_CONFIDENCE: f64 = 0.9;

/// The language of one item, the whole rule in one place: the item's own declaration
/// (`xml:lang` on the item or its content, a post's `lang`); else the feed's declaration
/// (`<language>`, `xml:lang` on the feed; for local posts the source's `language`) —
/// unless detection is confident (see [`OVERRULE_MIN_CONFIDENCE`]) that `text` is in
/// another language and the text's function words agree ([`overrules`]), which then
/// wins; else what detection finds; else `fallback` (the
/// source's configured `language`). A region the feed declares (`en-GB`) is kept when
/// detection agrees on the language.
pub fn choose(
    item: Option<&str>,
    feed: Option<&str>,
    text: &str,
    fallback: Option<&str>,
) -> Option<String> {
    if let Some(l) = item.and_then(normalise_tag) {
        return Some(l);
    }
    match feed.and_then(normalise_tag) {
        // Detection is most of an item's normalising cost, and most items are in the
        // language their feed declares: ask it only when some language could overrule.
        // The function words are counted once, for every language at a time: the
        // languages that could overrule are then known, and what detection finds
        // overrules exactly when it is one of them ([`overrules`] holds for it).
        Some(declared) => {
            let could = overruling_languages(text, &declared);
            if could == 0 {
                return Some(declared);
            }
            match detect_confidently(text) {
                Some(found)
                    if primary(&found) != primary(&declared)
                        && word_language(&found).is_some_and(|f| could & (1 << f) != 0) =>
                {
                    Some(found)
                }
                _ => Some(declared),
            }
        }
        None => detect(text).or_else(|| fallback.map(str::to_owned)),
    }
}

/// The primary language subtag: `en` of `en-GB`.
fn primary(tag: &str) -> &str {
    tag.split('-').next().unwrap_or(tag)
}

/// Whether `found` may overrule the feed's `declared` language for `text`: detection is
/// confident ([`detect_confidently`]) and the text's own function words side with it.
/// Trigram statistics are easily swayed by names: an English report on the
/// "Deutsch-Europäisches Forum für Urbane Sicherheit" in Stuttgart scores as German
/// with full confidence, while its "the", "of" and "and" say English.
///
/// This is the rule as written; [`overruling_languages`] computes it for every language
/// in one pass, and the tests hold the two to the same answers.
#[cfg(test)]
fn overrules(text: &str, found: &str, declared: &str) -> bool {
    let (Some(f), Some(d)) = (function_words(found), function_words(declared)) else {
        // No word list for one of them: the declaration stands.
        return false;
    };
    let (mut for_found, mut for_declared) = (0usize, 0usize);
    for word in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        let (in_f, in_d) = (f.contains(&word.as_str()), d.contains(&word.as_str()));
        // A word both languages use ("la", "in") speaks for neither.
        match (in_f, in_d) {
            (true, false) => for_found += 1,
            (false, true) => for_declared += 1,
            _ => {}
        }
    }
    for_found >= MIN_FUNCTION_WORDS && for_found > 2 * for_declared
}

/// The primary tags that have a [`function_words`] list, in one fixed order (bit `i` of
/// [`word_languages`] is `FUNCTION_WORD_LANGUAGES[i]`).
const FUNCTION_WORD_LANGUAGES: [&str; 6] = ["de", "en", "fr", "es", "it", "nl"];

/// The bit of `tag`'s primary language in [`overruling_languages`]' answer, if it has a
/// word list.
fn word_language(tag: &str) -> Option<usize> {
    FUNCTION_WORD_LANGUAGES
        .iter()
        .position(|l| *l == primary(tag))
}

/// A lower-cased word of at most [`KEY_BYTES`] bytes as one number: its UTF-8 bytes,
/// little-endian, zero-padded (no letter is a zero byte, so no two words share a key).
/// The gate below looks up every short word of every item whose feed declares a
/// language, and a string hash map made that most of choosing a language.
type WordKey = u64;
const KEY_BYTES: usize = 8;

/// Every function word ([`function_words`]) with a bit for each language whose list
/// holds it (bit `i` is `FUNCTION_WORD_LANGUAGES[i]`), in an open-addressed table.
struct WordTable {
    slots: Box<[(WordKey, u8)]>,
}

impl WordTable {
    /// Slots: a power of two, at least twice the number of function words (~170).
    const BITS: u32 = 9;

    fn build() -> WordTable {
        let mut t = WordTable {
            slots: vec![(0, 0); 1 << Self::BITS].into_boxed_slice(),
        };
        for (i, tag) in FUNCTION_WORD_LANGUAGES.iter().enumerate() {
            for word in function_words(tag).unwrap_or_default() {
                let key = key_of(word).expect("function words are at most KEY_BYTES long");
                let slot = t.slot(key);
                t.slots[slot].0 = key;
                t.slots[slot].1 |= 1 << i;
            }
        }
        t
    }

    /// The slot holding `key`, or the empty one where it would go.
    fn slot(&self, key: WordKey) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - Self::BITS)) as usize;
        while self.slots[i].0 != key && self.slots[i].0 != 0 {
            i = (i + 1) & mask;
        }
        i
    }

    fn get(&self, key: WordKey) -> u8 {
        self.slots[self.slot(key)].1
    }
}

fn word_table() -> &'static WordTable {
    static TABLE: std::sync::OnceLock<WordTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(WordTable::build)
}

/// The key of an already lower-cased word; `None` when it is longer than a key.
fn key_of(lower: &str) -> Option<WordKey> {
    let b = lower.as_bytes();
    if b.len() > KEY_BYTES {
        return None;
    }
    let mut bytes = [0u8; KEY_BYTES];
    bytes[..b.len()].copy_from_slice(b);
    Some(WordKey::from_le_bytes(bytes))
}

/// The key of `word` lower-cased, without allocating; `None` when the lower-cased word
/// is longer than a key (then it is no function word).
fn lower_key(word: &str) -> Option<WordKey> {
    let mut bytes = [0u8; KEY_BYTES];
    let mut n = 0;
    for c in word.chars().flat_map(char::to_lowercase) {
        let len = c.len_utf8();
        if n + len > KEY_BYTES {
            return None;
        }
        c.encode_utf8(&mut bytes[n..]);
        n += len;
    }
    Some(WordKey::from_le_bytes(bytes))
}

/// The languages (bit `i` for `FUNCTION_WORD_LANGUAGES[i]`) for which [`overrules`]
/// holds against `declared` on `text`, counted for all of them in one pass over the
/// words. Zero means the declaration stands whatever detection would find, and so does
/// a found language whose bit is clear. Zero as well when `declared` has no word list.
fn overruling_languages(text: &str, declared: &str) -> u8 {
    let Some(d) = word_language(declared) else {
        return 0;
    };
    let table = word_table();
    let (mut for_other, mut for_declared) = ([0usize; 6], [0usize; 6]);
    for_each_word_key(text, |key| {
        let bits = table.get(key);
        if bits == 0 {
            return;
        }
        let in_d = bits & (1 << d) != 0;
        for l in (0..FUNCTION_WORD_LANGUAGES.len()).filter(|&l| l != d) {
            match (bits & (1 << l) != 0, in_d) {
                (true, false) => for_other[l] += 1,
                (false, true) => for_declared[l] += 1,
                _ => {}
            }
        }
    });
    (0..FUNCTION_WORD_LANGUAGES.len())
        .filter(|&l| {
            l != d && for_other[l] >= MIN_FUNCTION_WORDS && for_other[l] > 2 * for_declared[l]
        })
        .fold(0, |bits, l| bits | (1 << l))
}

/// How [`for_each_word_key`] reads a byte: an ASCII letter as itself lowered, other
/// ASCII as 0 (a separator), and every byte of a multi-byte char as 0x80.
const BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if !b.is_ascii() {
            0x80
        } else if b.is_ascii_alphabetic() {
            b.to_ascii_lowercase()
        } else {
            0
        };
        i += 1;
    }
    t
};

/// Calls `f` with the lower-cased key of every word of `text` that fits one. A word is
/// what `text.split(|c: char| !c.is_alphabetic())` gives, without the empty ones;
/// ASCII is read and lowered byte by byte through one table, other text char by char.
fn for_each_word_key(text: &str, mut f: impl FnMut(WordKey)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if BYTE_CLASS[usize::from(bytes[i])] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut ascii = true;
        while i < bytes.len() {
            match BYTE_CLASS[usize::from(bytes[i])] {
                0 => break,
                // U+00C0–U+00FF (`ä`, `é`, …) without the Unicode tables: all letters
                // but `×` (C3 97) and `÷` (C3 B7).
                0x80 if bytes[i] == 0xC3 && !matches!(bytes.get(i + 1), Some(0x97 | 0xB7)) => {
                    ascii = false;
                    i += 2;
                }
                0x80 => {
                    let c = text[i..].chars().next().expect("i is at a char boundary");
                    if !c.is_alphabetic() {
                        break;
                    }
                    ascii = false;
                    i += c.len_utf8();
                }
                _ => i += 1,
            }
        }
        if i == start {
            // A non-ASCII char that is no letter.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let word = &bytes[start..i];
        if ascii {
            if word.len() <= KEY_BYTES {
                let key = word.iter().enumerate().fold(0, |key, (n, b)| {
                    key | WordKey::from(BYTE_CLASS[usize::from(*b)]) << (8 * n)
                });
                f(key);
            }
        } else if let Some(key) = lower_key(&text[start..i]) {
            f(key);
        }
    }
}

/// Function words the detected language's side needs at least, to overrule.
const MIN_FUNCTION_WORDS: usize = 3;

/// The commonest short words of the languages our partners write in, by primary tag.
fn function_words(tag: &str) -> Option<&'static [&'static str]> {
    Some(match primary(tag) {
        "de" => &[
            "der", "die", "das", "und", "ist", "sind", "mit", "von", "den", "dem", "des", "für",
            "nicht", "auf", "ein", "eine", "einen", "sich", "auch", "zu", "im", "zur", "zum",
            "bei", "nach", "wird", "werden", "über", "wie", "oder",
        ],
        "en" => &[
            "the", "and", "of", "to", "is", "are", "were", "with", "for", "that", "this", "from",
            "by", "have", "has", "it", "its", "their", "they", "which", "been", "be", "or", "at",
            "on", "who", "more", "new",
        ],
        "fr" => &[
            "le", "la", "les", "et", "des", "du", "un", "une", "est", "sont", "pour", "dans",
            "que", "qui", "sur", "au", "aux", "avec", "par", "pas", "ce", "cette", "ils", "leur",
            "leurs", "été", "ont", "mais", "ou", "plus",
        ],
        "es" => &[
            "el", "la", "los", "las", "y", "que", "en", "del", "por", "con", "para", "una", "es",
            "se", "su", "sus", "al", "lo", "como", "más", "pero", "fue", "son", "este", "esta",
        ],
        "it" => &[
            "il", "lo", "la", "gli", "le", "e", "di", "che", "per", "con", "una", "è", "sono",
            "del", "della", "nel", "nella", "dei", "non", "si", "anche", "come", "più", "ma",
            "questo",
        ],
        "nl" => &[
            "de", "het", "een", "en", "van", "is", "zijn", "met", "voor", "op", "niet", "dat",
            "die", "aan", "ook", "om", "door", "bij", "naar", "wordt", "worden", "heeft", "over",
            "als",
        ],
        _ => return None,
    })
}

/// [`detect`] held to the stricter standard that may overrule a declaration.
fn detect_confidently(text: &str) -> Option<String> {
    let text = prefix_at_word(text, DETECT_PREFIX);
    if text.chars().filter(|c| c.is_alphabetic()).count() < OVERRULE_MIN_LETTERS {
        return None;
    }
    let (lang, reliable, confidence) = detect_raw(text)?;
    if !reliable || confidence < OVERRULE_MIN_CONFIDENCE {
        return None;
    }
    code(lang)
}

/// What whatlang answers for `prefix`: the language, whether it is reliable, and its
/// confidence.
type Detected = Option<(whatlang::Lang, bool, f64)>;

/// How many answers [`detect_raw`] keeps (each keyed by a prefix of at most
/// [`DETECT_PREFIX`] bytes: a few megabytes at most); when full, it starts again.
const DETECTED_KEPT: usize = 4096;

/// whatlang on `prefix`, remembered: one detection costs as much as the rest of
/// normalising an item, and the same text comes again and again: copies of a story in
/// other partners' feeds (a fifth of the medium corpus' items), and every unchanged item
/// of a document fetched again. The answer is a function of the prefix alone, so a kept
/// one is the answer detection would give.
fn detect_raw(prefix: &str) -> Detected {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Kept = HashMap<Box<str>, Detected>;
    static KEPT: Mutex<Option<Kept>> = Mutex::new(None);
    // A panic elsewhere with the lock held leaves only answers behind: keep using it.
    let lock = || KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = lock().get_or_insert_with(HashMap::new).get(prefix) {
        return *d;
    }
    let d = detector()
        .detect(prefix)
        .map(|info| (info.lang(), info.is_reliable(), info.confidence()));
    let mut kept = lock();
    let m = kept.get_or_insert_with(HashMap::new);
    if m.len() >= DETECTED_KEPT {
        m.clear();
    }
    m.insert(prefix.into(), d);
    d
}

fn code(lang: whatlang::Lang) -> Option<String> {
    LANGS
        .iter()
        .find(|(l, _)| *l == lang)
        .map(|(_, code)| (*code).to_owned())
}

/// The languages detection may answer, with their BCP 47 tags: the ones our partners and
/// readers write in. Anything else was never reported, so whatlang need not score the
/// other fifty-odd languages it knows for every item: a third of a large build's time went
/// there before the list was passed in.
const LANGS: [(whatlang::Lang, &str); 18] = [
    (whatlang::Lang::Deu, "de"),
    (whatlang::Lang::Eng, "en"),
    (whatlang::Lang::Fra, "fr"),
    (whatlang::Lang::Spa, "es"),
    (whatlang::Lang::Ita, "it"),
    (whatlang::Lang::Nld, "nl"),
    (whatlang::Lang::Pol, "pl"),
    (whatlang::Lang::Por, "pt"),
    (whatlang::Lang::Swe, "sv"),
    (whatlang::Lang::Dan, "da"),
    (whatlang::Lang::Ces, "cs"),
    (whatlang::Lang::Tur, "tr"),
    (whatlang::Lang::Rus, "ru"),
    (whatlang::Lang::Ukr, "uk"),
    (whatlang::Lang::Ell, "el"),
    (whatlang::Lang::Hun, "hu"),
    (whatlang::Lang::Ron, "ro"),
    (whatlang::Lang::Fin, "fi"),
];

fn detector() -> &'static whatlang::Detector {
    static DETECTOR: std::sync::OnceLock<whatlang::Detector> = std::sync::OnceLock::new();
    DETECTOR
        .get_or_init(|| whatlang::Detector::with_allowlist(LANGS.iter().map(|(l, _)| *l).collect()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_function_word_is_longer_than_six_letters() {
        for tag in FUNCTION_WORD_LANGUAGES {
            for w in function_words(tag).unwrap() {
                assert!(w.chars().count() <= 6, "{tag}: {w}");
                assert!(w.len() <= KEY_BYTES, "{tag}: {w}");
                assert_eq!(w.to_lowercase(), *w, "{tag}: {w}");
            }
        }
    }

    /// [`overruling_languages`] against [`overrules`], the rule as written, for every
    /// declared and every other language with a word list.
    fn assert_gate_agrees(text: &str, declared: &str) {
        let bits = overruling_languages(text, declared);
        for (l, f) in FUNCTION_WORD_LANGUAGES.iter().enumerate() {
            let want = *f != primary(declared) && overrules(text, f, declared);
            assert_eq!(bits & (1 << l) != 0, want, "{declared} vs {f}: {text}");
        }
    }

    proptest::proptest! {
        /// The keys the gate looks up are those of the words `split` gives, lower-cased,
        /// wherever the lower-cased word fits a key.
        #[test]
        fn word_keys_are_those_of_the_lowered_letter_runs(text in ".{0,200}", mixed in "[a-zA-Z .,;0-9äöüßéÄÖÜÉİΣ]{0,200}") {
            for t in [&text, &mixed] {
                let want: Vec<WordKey> = t
                    .split(|c: char| !c.is_alphabetic())
                    .filter(|w| !w.is_empty())
                    .filter_map(|w| key_of(&w.chars().flat_map(char::to_lowercase).collect::<String>()))
                    .collect();
                let mut got = Vec::new();
                for_each_word_key(t, |k| got.push(k));
                proptest::prop_assert_eq!(got, want);
            }
        }

        /// The gate agrees with [`overrules`] on texts made of function words of
        /// several languages (the case where the counts are close), in lower, title
        /// and upper case, and other words.
        #[test]
        fn the_detection_gate_agrees_with_overrules_on_mixed_texts(
            picks in proptest::collection::vec((0usize..6, 0usize..40, 0u8..3), 0..40),
        ) {
            let words: Vec<String> = picks
                .iter()
                .map(|&(l, i, case)| {
                    let list = function_words(FUNCTION_WORD_LANGUAGES[l]).unwrap();
                    let w = if i < list.len() { list[i] } else if case == 0 { "Stuttgart" } else { "forum" };
                    match case {
                        1 => w.to_uppercase(),
                        2 => w.chars().take(1).flat_map(char::to_uppercase).chain(w.chars().skip(1)).collect(),
                        _ => w.to_owned(),
                    }
                })
                .collect();
            let text = words.join(" ");
            for declared in FUNCTION_WORD_LANGUAGES {
                assert_gate_agrees(&text, declared);
            }
        }
    }

    /// The gate in front of detection clears a language exactly where [`overrules`]
    /// holds for it: then skipping detection, or the word count after it, cannot change
    /// a result.
    #[test]
    fn the_detection_gate_never_hides_a_language_that_could_overrule() {
        let texts = [
            "The forum met in Stuttgart and the members of the board talked with the mayor about their new plans for safer streets.",
            "Die Mitglieder des Forums trafen sich in Stuttgart und sprachen mit der Bürgermeisterin über die neuen Pläne für sichere Straßen.",
            "Les membres du forum se sont réunis à Stuttgart et ont parlé avec la maire des nouveaux plans pour des rues plus sûres.",
            "Los miembros del foro se reunieron en Stuttgart y hablaron con la alcaldesa sobre los nuevos planes para calles más seguras.",
            "I membri del forum si sono riuniti a Stoccarda e hanno parlato con la sindaca dei nuovi piani per strade più sicure.",
            "De leden van het forum kwamen bijeen in Stuttgart en spraken met de burgemeester over de nieuwe plannen voor veiligere straten.",
            "Deutsch-Europäisches Forum für Urbane Sicherheit: the report of the year, with the list of the new members and their projects.",
            "ÜBER DIE STADT UND FÜR DIE BÜRGER: THE END. Été, été, ÉTÉ; PIÙ è È",
            "la la la le le et et et the the",
            "Termine",
            "",
        ];
        for text in texts {
            for declared in ["de", "en", "fr", "es", "it", "nl", "pl", "en-GB"] {
                assert_gate_agrees(text, declared);
            }
        }
    }

    use super::*;

    #[test]
    fn latin1_letters_are_read_as_the_unicode_tables_say() {
        for c in ('\u{c0}'..='\u{ff}').chain(['\u{100}', 'ß', '\u{a0}', '\u{bf}']) {
            let text = format!("x{c}y z");
            let want: Vec<WordKey> = text
                .split(|c: char| !c.is_alphabetic())
                .filter(|w| !w.is_empty())
                .filter_map(|w| key_of(&w.chars().flat_map(char::to_lowercase).collect::<String>()))
                .collect();
            let mut got = Vec::new();
            for_each_word_key(&text, |k| got.push(k));
            assert_eq!(got, want, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn a_kept_detection_is_what_whatlang_answers() {
        let texts = [
            "Die Mitglieder des Forums trafen sich in Stuttgart und sprachen mit der Bürgermeisterin über die neuen Pläne für sichere Straßen.",
            "The forum met in Stuttgart and the members of the board talked with the mayor about their new plans for safer streets.",
            "Termine",
        ];
        for round in 0..2 {
            for t in texts {
                let want = detector()
                    .detect(t)
                    .map(|i| (i.lang(), i.is_reliable(), i.confidence()));
                assert_eq!(detect_raw(t), want, "round {round}: {t}");
            }
        }
    }

    #[test]
    fn tags_are_cleaned() {
        assert_eq!(normalise_tag("de_DE").as_deref(), Some("de-DE"));
        assert_eq!(normalise_tag("EN-gb").as_deref(), Some("en-GB"));
        assert_eq!(normalise_tag("fr").as_deref(), Some("fr"));
        assert_eq!(normalise_tag("123"), None);
        assert_eq!(normalise_tag("zh-hant-tw").as_deref(), Some("zh-Hant-TW"));
        assert_eq!(normalise_tag("es-419").as_deref(), Some("es-419"));
        assert_eq!(normalise_tag("de-DE-1996").as_deref(), Some("de-DE"));
        assert_eq!(normalise_tag("German").as_deref(), Some("de"));
        assert_eq!(normalise_tag(" français ").as_deref(), Some("fr"));
        assert_eq!(normalise_tag("x-default"), None);
    }

    #[test]
    fn german_text_is_detected() {
        let t = "Die Stadt und ihre Bürgerinnen und Bürger arbeiten gemeinsam an der Prävention von Kriminalität in den Quartieren.";
        assert_eq!(detect(t).as_deref(), Some("de"));
    }

    #[test]
    fn a_long_text_is_judged_by_its_opening() {
        let de = "Die Stadt und ihre Bürgerinnen und Bürger arbeiten gemeinsam an der Prävention von Kriminalität in den Quartieren. ";
        let en = "Cities across Europe are working together with their residents on the prevention of crime in their districts. ";
        // German first, then far more English than the prefix holds: the opening decides.
        let text = format!("{}{}", de.repeat(10), en.repeat(200));
        assert_eq!(detect(&text).as_deref(), Some("de"));
        let text = format!("{}{}", en.repeat(10), de.repeat(200));
        assert_eq!(detect(&text).as_deref(), Some("en"));
    }

    const DE_LONG: &str = "Die Stadt und ihre Bürgerinnen und Bürger arbeiten gemeinsam an der \
        Prävention von Kriminalität in den Quartieren. Der kommunale Präventionsrat hat dazu \
        ein Programm beschlossen, das Nachbarschaften stärkt und Jugendlichen Angebote macht.";
    const EN_LONG: &str = "Cities across Europe are working together with their residents on the \
        prevention of crime in their districts. The network has adopted a programme that \
        strengthens neighbourhoods and offers young people somewhere to go in the evening.";
    const FR_LONG: &str = "Les villes européennes travaillent avec leurs habitants à la \
        prévention de la délinquance dans les quartiers. Le réseau a adopté un programme qui \
        renforce les liens de voisinage et propose des activités aux jeunes le soir.";
    /// Short items: a title and a line, as partners' event listings and link posts are.
    const DE_SHORT: &str = "Fachtag in Köln. Anmeldung bis Freitag.";
    const EN_SHORT: &str = "Annual report 2023. Now online.";
    const FR_SHORT: &str = "Rapport annuel. En ligne.";
    /// English full of German names, as a DEFUS partner writes about German cities.
    const EN_GERMAN_NAMES: &str = "DEFUS Mitgliederversammlung in Stuttgart. The members of \
        the Deutsch-Europäisches Forum für Urbane Sicherheit met at the Rathaus Stuttgart \
        and elected a new board for the Landespräventionsrat Niedersachsen network.";

    #[test]
    fn a_confident_detection_overrules_the_feeds_declaration() {
        for (text, want) in [(DE_LONG, "de"), (EN_LONG, "en-GB"), (FR_LONG, "fr")] {
            assert_eq!(
                choose(None, Some("en-GB"), text, None).as_deref(),
                Some(want)
            );
        }
        for (text, want) in [(DE_LONG, "de"), (EN_LONG, "en"), (FR_LONG, "fr")] {
            assert_eq!(choose(None, Some("de"), text, None).as_deref(), Some(want));
        }
    }

    #[test]
    fn short_texts_keep_the_feeds_declaration() {
        for declared in ["en", "en-GB", "de", "fr"] {
            for text in [DE_SHORT, EN_SHORT, FR_SHORT] {
                assert_eq!(
                    choose(None, Some(declared), text, None).as_deref(),
                    Some(declared),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn english_with_german_names_in_an_english_feed_stays_english() {
        assert_eq!(
            choose(None, Some("en"), EN_GERMAN_NAMES, None).as_deref(),
            Some("en")
        );
    }

    /// Just over the letter floor (108 letters), a plain English paragraph in a German
    /// feed is English; a French one just under it (92 letters) keeps the declaration.
    #[test]
    fn the_letter_floor_decides_for_medium_texts() {
        let en = "Efus conference in Lyon. More than six hundred mayors, police chiefs, \
            researchers and social workers met in Lyon for the conference.";
        let fr = "Rencontre à Lyon. Plus de six cents maires, chefs de police et chercheurs \
            se sont réunis à Lyon pour la conférence.";
        assert_eq!(choose(None, Some("de"), en, None).as_deref(), Some("en"));
        assert_eq!(choose(None, Some("de"), fr, None).as_deref(), Some("de"));
    }

    #[test]
    fn the_items_own_declaration_wins_over_detection() {
        assert_eq!(
            choose(Some("de"), Some("en"), FR_LONG, None).as_deref(),
            Some("de")
        );
    }

    #[test]
    fn without_a_declaration_detection_then_the_source_default_decide() {
        assert_eq!(
            choose(None, None, FR_LONG, Some("de")).as_deref(),
            Some("fr")
        );
        assert_eq!(
            choose(None, None, FR_SHORT, Some("de")).as_deref(),
            Some("de")
        );
        assert_eq!(choose(None, None, FR_SHORT, None), None);
    }

    #[test]
    fn the_prefix_ends_on_a_char_boundary_before_a_word() {
        let t = "ä".repeat(3000);
        let p = prefix_at_word(&t, 1025);
        assert!(p.len() <= 1025 && p.chars().all(|c| c == 'ä'));
        let words = "Prävention ".repeat(400);
        let p = prefix_at_word(&words, DETECT_PREFIX);
        assert!(p.ends_with("Prävention"), "{}", &p[p.len() - 20..]);
        assert_eq!(prefix_at_word("kurz", DETECT_PREFIX), "kurz");
    }
}
