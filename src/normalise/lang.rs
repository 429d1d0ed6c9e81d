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
    let info = detector().detect(text)?;
    if !info.is_reliable() {
        return None;
    }
    LANGS
        .iter()
        .find(|(l, _)| *l == info.lang())
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
    use super::*;

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
