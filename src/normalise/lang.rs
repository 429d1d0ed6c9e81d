//! Language tags: declared ones cleaned to BCP 47 form, missing ones detected.

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

/// Detects the language of `text` (whatlang); `None` when unsure or too short.
pub fn detect(text: &str) -> Option<String> {
    if text.chars().filter(|c| c.is_alphabetic()).count() < 40 {
        return None;
    }
    let info = whatlang::detect(text)?;
    if !info.is_reliable() {
        return None;
    }
    let code = match info.lang() {
        whatlang::Lang::Deu => "de",
        whatlang::Lang::Eng => "en",
        whatlang::Lang::Fra => "fr",
        whatlang::Lang::Spa => "es",
        whatlang::Lang::Ita => "it",
        whatlang::Lang::Nld => "nl",
        whatlang::Lang::Pol => "pl",
        whatlang::Lang::Por => "pt",
        whatlang::Lang::Swe => "sv",
        whatlang::Lang::Dan => "da",
        whatlang::Lang::Ces => "cs",
        whatlang::Lang::Tur => "tr",
        whatlang::Lang::Rus => "ru",
        whatlang::Lang::Ukr => "uk",
        whatlang::Lang::Ell => "el",
        whatlang::Lang::Hun => "hu",
        whatlang::Lang::Ron => "ro",
        whatlang::Lang::Fin => "fi",
        _ => return None,
    };
    Some(code.to_owned())
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
}
