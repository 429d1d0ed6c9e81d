//! Date text → UTC instant, with the rules partner feeds need: RFC 3339/ISO 8601, RFC 822
//! with its common faults, German forms, and zone-less dates read in the source's zone.
//!
//! A leaf module: feed-rs calls [`parse`] during parsing (its own lenient parser drops
//! the forms we need), and page sources and front matter use the same rules. What to do
//! with a missing or future date is not decided here but in `normalise`.
//!
//! The rules, in the order they are tried:
//!
//! 1. **RFC 3339 / ISO 8601**: `2017-10-09T14:30:00+02:00`, `…Z`, fractions, `+0200`
//!    and `+02` offsets, a space instead of `T`, minutes without seconds, the basic form
//!    `20171009T143000Z`, and `2017-10-09` alone (midnight in the source's zone).
//! 2. **RFC 822 and its relatives**, read token by token so that faults do not matter:
//!    the weekday is optional and *ignored* (a wrong weekday is a template bug; the
//!    numbers are what the partner meant), seconds are optional, two-digit years follow
//!    RFC 5322 §4.3 (`00`–`49` → 20xx, `50`–`99` → 19xx), month and weekday names may be
//!    English or German (`Mo, 09 Okt 2017`, `9. Oktober 2017, 14:30 Uhr`), and the zone
//!    may be numeric (`+0200`, `+02:00`, `GMT+2`) or a named abbreviation
//!    (`GMT`, `CEST`/`MESZ`, `CET`/`MEZ`, the RFC 822 US zones `EST`…`PDT`, and a few
//!    more, see [`named_zone`]). `CST` is US Central as RFC 822 defines it.
//! 3. **German numeric dates**: `09.10.2017`, `9.10.17`, `09.10.2017 14:30`.
//!
//! Numeric dates with slashes (`10/09/2017`) are refused: month-first and day-first
//! readings are both common, and a wrong guess is worse than no date.
//!
//! A date without a zone is wall-clock time in the source's zone (default: the site's,
//! `Europe/Berlin`); see [`local_to_utc`] for daylight saving.

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc,
};
use chrono_tz::Tz;

/// Parses a date as partners write it. Dates without a zone are read in `tz`.
pub fn parse(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || text.len() > 100 {
        return None;
    }
    parse_iso(text, tz).or_else(|| parse_tokens(text, tz))
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

/// Wall-clock time in `tz` → UTC, with a fixed rule for the two daylight-saving edges:
///
/// - **Ambiguous** (the autumn hour that happens twice, e.g. `29.10.2017 02:30` in
///   Berlin): the *earlier* instant (summer time) is taken. A partner writing "02:30"
///   that night most likely wrote it before the clocks went back, and choosing the
///   earlier one never dates an item into the future.
/// - **Gap** (the spring hour that does not exist, e.g. `26.03.2017 02:30`): the time is
///   read with the offset in force *before* the gap, which lands the same distance after
///   it (`03:30` summer time, `01:30Z`). This is what jiff and java.time do, and keeps
///   the order of items written across the gap.
pub fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) => d.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // No zone has a gap longer than a few hours; three hours before is safely
            // outside it.
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

// ---- ISO 8601 ---------------------------------------------------------------------------

fn parse_iso(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    let b = text.as_bytes();
    // Basic form: 20171009T143000Z / 20171009T1430+0200 / 20171009.
    if b.len() >= 8 && b[..8].iter().all(u8::is_ascii_digit) && (b.len() == 8 || b[8] == b'T') {
        let date = NaiveDate::parse_from_str(&text[..8], "%Y%m%d").ok()?;
        if b.len() == 8 {
            return Some(local_to_utc(date.and_hms_opt(0, 0, 0)?, tz));
        }
        let (time, zone) = split_zone(&text[9..])?;
        let time = if time.len() == 6 {
            NaiveTime::parse_from_str(time, "%H%M%S").ok()?
        } else {
            NaiveTime::parse_from_str(time, "%H%M").ok()?
        };
        return Some(finish(date.and_time(time), zone, tz));
    }
    // Extended form: 2017-10-09[(T| )14:30[:00[.123]]][Z|±hh[:mm]]; also 2017/10/09.
    if b.len() < 10 || !(b[4] == b'-' || b[4] == b'/') || b[7] != b[4] {
        return None;
    }
    let fmt = if b[4] == b'-' { "%Y-%m-%d" } else { "%Y/%m/%d" };
    let date = NaiveDate::parse_from_str(text.get(..10)?, fmt).ok()?;
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(local_to_utc(date.and_hms_opt(0, 0, 0)?, tz));
    }
    let rest = rest
        .strip_prefix('T')
        .or_else(|| rest.strip_prefix(' '))?
        .trim();
    let (time, zone) = split_zone(rest)?;
    let time = parse_clock(time.trim())?;
    Some(finish(date.and_time(time), zone, tz))
}

/// Splits `14:30:00+02:00` / `14:30Z` / `14:30 GMT` into the clock and its zone.
fn split_zone(s: &str) -> Option<(&str, Option<FixedOffset>)> {
    let s = s.trim();
    if let Some(t) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((t, FixedOffset::east_opt(0)));
    }
    if let Some(at) = s.rfind([' ']) {
        let (t, z) = (&s[..at], s[at + 1..].trim());
        if let Some(off) = zone(z) {
            return Some((t, Some(off)));
        }
        return None;
    }
    if let Some(at) = s.rfind(['+', '-']) {
        let off = numeric_offset(&s[at..])?;
        return Some((&s[..at], Some(off)));
    }
    Some((s, None))
}

fn finish(naive: NaiveDateTime, zone: Option<FixedOffset>, tz: Tz) -> DateTime<Utc> {
    match zone {
        Some(off) => match off.from_local_datetime(&naive) {
            LocalResult::Single(d) => d.with_timezone(&Utc),
            _ => Utc.from_utc_datetime(&naive),
        },
        None => local_to_utc(naive, tz),
    }
}

/// `14:30`, `14:30:00`, `14:30:00.123`, `14.30` (German), `2:30`.
fn parse_clock(s: &str) -> Option<NaiveTime> {
    let s = s.replace('.', ":");
    // A fraction after the seconds was turned into a third colon: drop it.
    let parts: Vec<&str> = s.split(':').collect();
    let num = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    match parts.as_slice() {
        [h, m] => NaiveTime::from_hms_opt(num(h)?, num(m)?, 0),
        [h, m, sec] | [h, m, sec, _] => {
            // Leap seconds (`23:59:60`) are clamped rather than rejected.
            NaiveTime::from_hms_opt(num(h)?, num(m)?, num(sec)?.min(59))
        }
        _ => None,
    }
}

/// `+0200`, `+02:00`, `+02`, `-0500`.
fn numeric_offset(s: &str) -> Option<FixedOffset> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        3 => (
            digits[..1].parse::<i32>().ok()?,
            digits[1..].parse::<i32>().ok()?,
        ),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// A zone as partners write it: numeric, `GMT+2`, or a named abbreviation.
fn zone(s: &str) -> Option<FixedOffset> {
    if let Some(off) = numeric_offset(s) {
        return Some(off);
    }
    let upper = s.trim_matches(['(', ')']).to_ascii_uppercase();
    for prefix in ["GMT", "UTC", "UT"] {
        if let Some(rest) = upper.strip_prefix(prefix) {
            if rest.is_empty() {
                return FixedOffset::east_opt(0);
            }
            if let Some(off) = numeric_offset(rest) {
                return Some(off);
            }
        }
    }
    named_zone(&upper).and_then(|m| FixedOffset::east_opt(m * 60))
}

/// Named zone abbreviations → minutes east of UTC. RFC 822's own (`UT`, `GMT`, `Z`, and
/// the US `EST`/`EDT`/`CST`/`CDT`/`MST`/`MDT`/`PST`/`PDT`), the European ones partner
/// feeds use in English and German (`CET`/`MEZ`, `CEST`/`MESZ`, `WET`/`WEZ`,
/// `WEST`/`WESZ`, `EET`/`OEZ`, `EEST`/`OESZ`, `BST`), and a few others seen in the wild.
/// Ambiguous abbreviations (`IST`: India or Ireland) are not listed and fail the parse.
pub fn named_zone(upper: &str) -> Option<i32> {
    Some(match upper {
        "UT" | "UTC" | "GMT" | "Z" | "WET" | "WEZ" => 0,
        "BST" | "WEST" | "WESZ" | "CET" | "MEZ" => 60,
        "CEST" | "MESZ" | "CEDT" | "EET" | "OEZ" => 120,
        "EEST" | "OESZ" | "MSK" => 180,
        "EST" => -300,
        "EDT" => -240,
        "CST" => -360,
        "CDT" => -300,
        "MST" => -420,
        "MDT" => -360,
        "PST" => -480,
        "PDT" => -420,
        "AKST" => -540,
        "AKDT" => -480,
        "HST" => -600,
        "JST" => 540,
        "AEST" => 600,
        "AEDT" => 660,
        "NZST" => 720,
        "NZDT" => 780,
        _ => return None,
    })
}

// ---- RFC 822 and friends, token by token -------------------------------------------------

fn month(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_lowercase();
    // Full names (English, German, French) and the abbreviations partners use.
    let m = match w.as_str() {
        "jan" | "january" | "januar" | "jän" | "jänner" | "janv" | "janvier" => 1,
        "feb" | "february" | "februar" | "febr" | "fév" | "févr" | "février" => 2,
        "mar" | "march" | "mär" | "mrz" | "märz" | "maerz" | "mars" => 3,
        "apr" | "april" | "avr" | "avril" => 4,
        "may" | "mai" => 5,
        "jun" | "june" | "juni" | "juin" => 6,
        "jul" | "july" | "juli" | "juil" | "juillet" => 7,
        "aug" | "august" | "août" => 8,
        "sep" | "sept" | "september" | "septembre" => 9,
        "oct" | "october" | "okt" | "oktober" | "octobre" => 10,
        "nov" | "november" | "novembre" => 11,
        "dec" | "december" | "dez" | "dezember" | "déc" | "décembre" => 12,
        _ => return None,
    };
    Some(m)
}

fn is_weekday(word: &str) -> bool {
    let w = word.trim_end_matches('.').to_lowercase();
    matches!(
        w.as_str(),
        "mon"
            | "tue"
            | "tues"
            | "wed"
            | "thu"
            | "thur"
            | "thurs"
            | "fri"
            | "sat"
            | "sun"
            | "monday"
            | "tuesday"
            | "wednesday"
            | "thursday"
            | "friday"
            | "saturday"
            | "sunday"
            | "mo"
            | "di"
            | "mi"
            | "do"
            | "fr"
            | "sa"
            | "so"
            | "montag"
            | "dienstag"
            | "mittwoch"
            | "donnerstag"
            | "freitag"
            | "samstag"
            | "sonnabend"
            | "sonntag"
            | "lun"
            | "mer"
            | "jeu"
            | "ven"
            | "sam"
            | "dim"
            | "lundi"
            | "mardi"
            | "mercredi"
            | "jeudi"
            | "vendredi"
            | "samedi"
            | "dimanche"
    )
}

/// Words that carry no date information in "am 9. Oktober 2017 um 14:30 Uhr" and
/// "Oct 9, 2017 at 2:30 pm".
fn is_filler(word: &str) -> bool {
    matches!(
        word.to_lowercase().as_str(),
        "uhr" | "um" | "am" | "den" | "at" | "on" | "the" | "of" | "le" | "à" | "-" | "–" | "|"
    )
}

fn parse_tokens(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let cleaned = text.replace(',', " ");
    let mut day: Option<u32> = None;
    let mut mon: Option<u32> = None;
    let mut year: Option<i32> = None;
    let mut time: Option<NaiveTime> = None;
    let mut zone_off: Option<FixedOffset> = None;
    let mut pm: Option<bool> = None;

    let set_year = |y: &str| -> Option<i32> {
        let v: i32 = y.parse().ok()?;
        match y.len() {
            2 => Some(if v < 50 { 2000 + v } else { 1900 + v }),
            4 => Some(v),
            _ => None,
        }
    };

    for tok in cleaned.split_whitespace() {
        let lower = tok.to_lowercase();
        // German numeric date as one token: 09.10.2017, 9.10.17.
        if tok.matches('.').count() >= 2
            && tok.trim_end_matches('.').matches('.').count() == 2
            && tok.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            let parts: Vec<&str> = tok.trim_end_matches('.').split('.').collect();
            if day.is_some() || mon.is_some() || year.is_some() {
                return None;
            }
            day = Some(small(parts[0])?);
            mon = Some(small(parts[1])?);
            year = Some(set_year(parts[2])?);
            continue;
        }
        // A clock, possibly with the zone attached: 14:30, 14:30:00+0200, 14:30Z.
        if tok.contains(':') && tok.as_bytes()[0].is_ascii_digit() {
            if time.is_some() {
                return None;
            }
            let (clock, z) = split_zone(tok)?;
            time = Some(parse_clock(clock)?);
            if z.is_some() {
                zone_off = z;
            }
            continue;
        }
        // German clock with a dot, after the date: "9. Oktober 2017, 14.30 Uhr".
        if time.is_none() && year.is_some() && tok.len() >= 4 && tok.len() <= 5 {
            if let Some((h, m)) = tok.split_once('.') {
                if h.len() <= 2 && m.len() == 2 {
                    if let Some(t) = parse_clock(tok) {
                        time = Some(t);
                        continue;
                    }
                }
            }
        }
        let digits = tok.strip_suffix('.').unwrap_or(tok);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if digits.len() == 4 && year.is_none() {
                year = Some(set_year(digits)?);
            } else if digits.len() <= 2 && day.is_none() {
                day = Some(small(digits)?);
            } else if digits.len() == 2 && year.is_none() && day.is_some() {
                year = Some(set_year(digits)?);
            } else {
                return None;
            }
            continue;
        }
        if let Some(m) = month(tok) {
            if mon.is_some() {
                return None;
            }
            mon = Some(m);
            continue;
        }
        if (lower == "am" || lower == "a.m." || lower == "pm" || lower == "p.m.") && time.is_some()
        {
            pm = Some(lower.starts_with('p'));
            continue;
        }
        if is_weekday(tok) || is_filler(tok) {
            continue;
        }
        if let Some(z) = zone(tok) {
            if zone_off.is_some() {
                return None;
            }
            zone_off = Some(z);
            continue;
        }
        return None;
    }

    let date = NaiveDate::from_ymd_opt(year?, mon?, day?)?;
    let mut time = time.unwrap_or(NaiveTime::MIN);
    if let Some(pm) = pm {
        use chrono::Timelike;
        let h = time.hour();
        if !(1..=12).contains(&h) {
            return None;
        }
        let h24 = match (pm, h) {
            (false, 12) => 0,
            (false, h) => h,
            (true, 12) => 12,
            (true, h) => h + 12,
        };
        time = time.with_hour(h24)?;
    }
    // Catch "99 Oct 2017" early; from_ymd_opt already refused impossible days.
    debug_assert!(date.day() >= 1);
    Some(finish(date.and_time(time), zone_off, tz))
}

fn small(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 2)
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn p(s: &str) -> Option<String> {
        parse(s, Berlin).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    #[test]
    fn rfc3339_and_iso_variants() {
        assert_eq!(
            p("2017-10-09T14:30:00+02:00").unwrap(),
            "2017-10-09T12:30:00Z"
        );
        assert_eq!(p("2017-10-09T12:30:00Z").unwrap(), "2017-10-09T12:30:00Z");
        assert_eq!(
            p("2017-10-09T12:30:00.123456Z").unwrap(),
            "2017-10-09T12:30:00Z"
        );
        assert_eq!(
            p("2017-10-09T14:30:00+0200").unwrap(),
            "2017-10-09T12:30:00Z"
        );
        assert_eq!(p("2017-10-09T14:30+02").unwrap(), "2017-10-09T12:30:00Z");
        assert_eq!(
            p("2017-10-09 14:30:00 +02:00").unwrap(),
            "2017-10-09T12:30:00Z"
        );
        assert_eq!(p("20171009T123000Z").unwrap(), "2017-10-09T12:30:00Z");
        assert_eq!(p("2017/10/09 14:30").unwrap(), "2017-10-09T12:30:00Z");
    }

    #[test]
    fn zone_less_dates_are_read_in_the_source_zone() {
        // Summer time (+02:00) and winter time (+01:00) in Berlin.
        assert_eq!(p("2017-10-09 14:30:00").unwrap(), "2017-10-09T12:30:00Z");
        assert_eq!(p("2017-12-09T14:30").unwrap(), "2017-12-09T13:30:00Z");
        assert_eq!(p("2017-10-09").unwrap(), "2017-10-08T22:00:00Z");
        assert_eq!(
            parse("2017-10-09 14:30", chrono_tz::America::New_York)
                .unwrap()
                .to_rfc3339(),
            "2017-10-09T18:30:00+00:00"
        );
    }

    #[test]
    fn spring_gap_shifts_forward_and_autumn_ambiguity_takes_the_earlier() {
        // 02:30 does not exist on 26 March 2017 in Berlin: read as 03:30 CEST.
        assert_eq!(p("26.03.2017 02:30").unwrap(), "2017-03-26T01:30:00Z");
        // 02:30 happens twice on 29 October 2017: the first (CEST) is taken.
        assert_eq!(p("29.10.2017 02:30").unwrap(), "2017-10-29T00:30:00Z");
    }

    #[test]
    fn rfc822_with_its_common_faults() {
        let want = "2017-10-09T12:30:00Z";
        assert_eq!(p("Mon, 09 Oct 2017 14:30:00 +0200").unwrap(), want);
        // missing seconds
        assert_eq!(p("Mon, 09 Oct 2017 14:30 +0200").unwrap(), want);
        // missing weekday
        assert_eq!(p("09 Oct 2017 14:30:00 +0200").unwrap(), want);
        // wrong weekday (9 Oct 2017 was a Monday): the numbers win
        assert_eq!(p("Fri, 09 Oct 2017 14:30:00 +0200").unwrap(), want);
        // two-digit year
        assert_eq!(p("Mon, 09 Oct 17 14:30:00 +0200").unwrap(), want);
        assert_eq!(
            p("Sat, 09 Oct 99 14:30:00 +0200").unwrap(),
            "1999-10-09T12:30:00Z"
        );
        // single-digit day and hour, full month name
        assert_eq!(
            p("Monday, 9 October 2017 9:05:00 GMT").unwrap(),
            "2017-10-09T09:05:00Z"
        );
        // colon in the offset, offset glued to the clock
        assert_eq!(p("Mon, 09 Oct 2017 14:30:00 +02:00").unwrap(), want);
        assert_eq!(p("Mon, 09 Oct 2017 14:30:00+0200").unwrap(), want);
        // RFC 1123 with Z, GMT+2
        assert_eq!(p("Mon, 09 Oct 2017 12:30:00 Z").unwrap(), want);
        assert_eq!(p("Mon, 09 Oct 2017 14:30:00 GMT+2").unwrap(), want);
        // no zone at all: the source's zone
        assert_eq!(p("Mon, 09 Oct 2017 14:30:00").unwrap(), want);
        // month first, twelve-hour clock
        assert_eq!(p("Oct 9, 2017 2:30 PM").unwrap(), want);
    }

    #[test]
    fn named_zones() {
        let want = "2017-10-09T12:30:00Z";
        for (zone, local) in [
            ("CEST", "14:30"),
            ("MESZ", "14:30"),
            ("CET", "13:30"),
            ("MEZ", "13:30"),
            ("GMT", "12:30"),
            ("UT", "12:30"),
            ("UTC", "12:30"),
            ("BST", "13:30"),
            ("EST", "07:30"),
            ("EDT", "08:30"),
            ("CST", "06:30"),
            ("CDT", "07:30"),
            ("MST", "05:30"),
            ("MDT", "06:30"),
            ("PST", "04:30"),
            ("PDT", "05:30"),
        ] {
            assert_eq!(
                p(&format!("Mon, 09 Oct 2017 {local}:00 {zone}")).as_deref(),
                Some(want),
                "{zone}"
            );
        }
        assert_eq!(p("Mon, 09 Oct 2017 14:30:00 IST"), None, "ambiguous zone");
        assert_eq!(p("Mon, 09 Oct 2017 14:30:00 XYZ"), None);
    }

    #[test]
    fn german_forms() {
        assert_eq!(p("09.10.2017").unwrap(), "2017-10-08T22:00:00Z");
        assert_eq!(p("9.10.17").unwrap(), "2017-10-08T22:00:00Z");
        assert_eq!(p("09.10.2017 14:30").unwrap(), "2017-10-09T12:30:00Z");
        assert_eq!(p("09.10.2017, 14:30 Uhr").unwrap(), "2017-10-09T12:30:00Z");
        assert_eq!(p("9. Oktober 2017").unwrap(), "2017-10-08T22:00:00Z");
        assert_eq!(
            p("Montag, 9. Oktober 2017, 14.30 Uhr").unwrap(),
            "2017-10-09T12:30:00Z"
        );
        assert_eq!(
            p("am 9. Okt. 2017 um 14:30 Uhr").unwrap(),
            "2017-10-09T12:30:00Z"
        );
        assert_eq!(
            p("Mo, 09 Okt 2017 14:30:00 +0200").unwrap(),
            "2017-10-09T12:30:00Z"
        );
        assert_eq!(
            p("Di, 14 Mär 2017 10:00:00 MEZ").unwrap(),
            "2017-03-14T09:00:00Z"
        );
        assert_eq!(p("3. März 2017").unwrap(), "2017-03-02T23:00:00Z");
        assert_eq!(p("1er janvier 2017"), None, "French ordinals are not read");
        assert_eq!(p("15 décembre 2017").unwrap(), "2017-12-14T23:00:00Z");
    }

    #[test]
    fn garbage_and_ambiguity_give_none() {
        for s in [
            "",
            "soon",
            "10/09/2017",
            "31.02.2017",
            "2017-13-01",
            "Mon, 32 Oct 2017 14:30:00 +0200",
            "Oct Nov 2017",
            "14:30",
            "2017",
            "Pizza 12 Oct 2017",
            "9 Oct 2017 25:00",
        ] {
            assert_eq!(p(s), None, "{s:?}");
        }
    }
}
