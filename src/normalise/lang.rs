//! Language tags: declared ones cleaned to BCP 47 form, missing ones detected.

/// `de_DE`, `DE-de`, `en-gb` → `de-DE`, `en-GB`; rejects what is not a language tag.
pub fn normalise_tag(raw: &str) -> Option<String> {
    let raw = raw.trim().replace('_', "-");
    let mut parts = raw.split('-');
    let lang = parts.next()?.to_ascii_lowercase();
    if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    match parts.next() {
        Some(r) if r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()) => {
            Some(format!("{lang}-{}", r.to_ascii_uppercase()))
        }
        _ => Some(lang),
    }
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
    }

    #[test]
    fn german_text_is_detected() {
        let t = "Die Stadt und ihre Bürgerinnen und Bürger arbeiten gemeinsam an der Prävention von Kriminalität in den Quartieren.";
        assert_eq!(detect(t).as_deref(), Some("de"));
    }
}
