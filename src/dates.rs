//! Date text → UTC instant, with the rules partner feeds need: RFC 3339 and RFC 822 with
//! their common faults, German forms, and zone-less dates read in the source's zone.
//!
//! A leaf module: feed-rs calls it during parsing (its own lenient parser drops the
//! forms we need), and page sources and front matter use the same rules.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Parses a date as partners write it. Dates without a zone are read in `tz`.
pub fn parse(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(text) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%d.%m.%Y %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(local_to_utc(n, tz));
        }
    }
    for fmt in ["%Y-%m-%d", "%d.%m.%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, fmt) {
            return Some(local_to_utc(d.and_hms_opt(0, 0, 0)?, tz));
        }
    }
    None
}

/// Parses with the given chrono formats first (page sources), then the general rules.
pub fn parse_with_formats(text: &str, formats: &[String], tz: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    for fmt in formats {
        if let Ok(d) = DateTime::parse_from_str(text, fmt) {
            return Some(d.with_timezone(&Utc));
        }
        if let Ok(n) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(local_to_utc(n, tz));
        }
        if let Ok(d) = NaiveDate::parse_from_str(text, fmt) {
            return Some(local_to_utc(d.and_hms_opt(0, 0, 0)?, tz));
        }
    }
    parse(text, tz)
}

/// Wall-clock time in `tz` → UTC. Ambiguous times (autumn) take the earlier offset;
/// times in the spring-forward gap are shifted forward by the gap, as jiff does.
pub fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) => d.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // In the gap: the offset before the gap applies, which lands after it.
            let before = naive - chrono::Duration::hours(3);
            let offset = match tz.from_local_datetime(&before) {
                LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => *d.offset(),
                LocalResult::None => return Utc.from_utc_datetime(&naive),
            };
            let utc = naive
                - chrono::Duration::seconds(chrono::Offset::fix(&offset).local_minus_utc() as i64);
            Utc.from_utc_datetime(&utc)
        }
    }
}

/// Checks that a chrono format string is usable (for `feedwerk check`).
pub fn validate_format(fmt: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        Err(format!("invalid date format `{fmt}`"))
    } else {
        Ok(())
    }
}
