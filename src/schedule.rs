//! When each source is fetched next: cron fire times on the site's wall clock, spread
//! with jitter, lengthened (never shortened) by what the partner asked for (`ttl`,
//! `Cache-Control: max-age`, `Retry-After`) and by exponential back-off after failures.
//!
//! Everything here is pure: it takes "now" as an argument and the fake-clock tests drive
//! it across the Europe/Berlin daylight-saving nights. Fetching, storing and sleeping are
//! left to `pipeline` and `daemon`, which only ask "when is this source due?".
//!
//! Why not the `cron` crate's iterator in the local zone: on the spring-forward night it
//! silently skips a fixed-time job (02:30 does not exist) and on the fall-back night it
//! fires it twice (02:30 happens twice). We use `cron` only to enumerate wall-clock times
//! (evaluated on a zone-less clock) and map each one to an instant ourselves, following
//! Vixie cron's rule:
//! - a wall-clock time inside the spring gap runs at the instant the gap ends (02:30 →
//!   03:30 CEST, i.e. shifted by the gap), once;
//! - a wall-clock time that happens twice runs once, at its first occurrence — unless the
//!   job runs every hour (`*` in the hour field), where the repeated hour is real time that
//!   must not go unpolled, so both occurrences run.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use cron::TimeUnitSpec;

/// A parsed cron expression (5 fields, or 6/7 with seconds first): `config` parses each
/// `schedule` key once into this, and everything after asks it for fire times.
#[derive(Debug, Clone)]
pub struct Cron {
    /// The expression as written in the config, for logs and equality.
    expr: String,
    /// Shared: every clone of the config (one per reload, `import`, tests) holds it, and
    /// the parsed field sets are large.
    schedule: Arc<cron::Schedule>,
    /// Every hour matches: an interval job rather than a fixed time of day.
    every_hour: bool,
}

/// Daylight-saving shifts are at most 2 hours (Antarctica/Troll); 3 leaves a margin.
const DST_WINDOW: chrono::Duration = chrono::Duration::hours(3);

impl Cron {
    /// Accepts the classic 5 fields (seconds = 0) or cron-with-seconds.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let fields = expr.split_whitespace().count();
        let full = if fields == 5 {
            format!("0 {expr}")
        } else {
            expr.to_owned()
        };
        let schedule = cron::Schedule::from_str(&full).map_err(|e| {
            let detail = e.to_string();
            let detail = detail.lines().last().unwrap_or_default().trim().to_owned();
            format!("invalid cron expression `{expr}` (expected `sec min hour day month weekday`, e.g. \"0 */15 * * * *\"): {detail}")
        })?;
        let every_hour = schedule.hours().count() == 24;
        Ok(Cron {
            expr: expr.to_owned(),
            schedule: Arc::new(schedule),
            every_hour,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The first fire time strictly after `after`, reading the expression on the wall
    /// clock of `tz`, with no skipped or doubled runs around daylight-saving changes.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let near_shift = offset_at(tz, after - DST_WINDOW) != offset_at(tz, after + DST_WINDOW);
        let local = after.with_timezone(&tz).naive_local();
        // In the repeated hour the wall clock is behind the last one we saw, so look back.
        let start = if near_shift {
            local - DST_WINDOW
        } else {
            local
        };
        let mut best: Option<DateTime<Utc>> = None;
        let mut best_local = None;
        for wall in self
            .schedule
            .after(&Utc.from_utc_datetime(&start))
            .map(|d| d.naive_utc())
            .take(100_000)
        {
            if let Some(bl) = best_local {
                // A later wall-clock time can only map to an earlier instant across a
                // fall-back, which is at most DST_WINDOW away.
                if wall > bl + DST_WINDOW {
                    break;
                }
            }
            for inst in self.instants(wall, tz) {
                if inst > after && best.is_none_or(|b| inst < b) {
                    best = Some(inst);
                    best_local = Some(wall);
                }
            }
            if let Some(b) = best {
                if offset_at(tz, b - DST_WINDOW) == offset_at(tz, b + DST_WINDOW) {
                    break;
                }
            }
        }
        best
    }

    /// The instants a wall-clock fire time stands for (see the module doc).
    fn instants(&self, wall: NaiveDateTime, tz: Tz) -> Vec<DateTime<Utc>> {
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                if self.every_hour {
                    vec![a.min(b), a.max(b)]
                } else {
                    vec![a.min(b)]
                }
            }
            LocalResult::None => {
                // In the gap: read the wall time with the offset in force before the gap,
                // which lands as far after the gap's end as the time was after its start.
                let before = wall - DST_WINDOW;
                let offset = match tz.from_local_datetime(&before) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.offset().fix(),
                    LocalResult::None => return Vec::new(),
                };
                vec![Utc.from_utc_datetime(&(wall - offset))]
            }
        }
    }
}

/// Two schedules are the same when written the same: a reloaded config compares its
/// sources with the running ones.
impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.expr)
    }
}

fn offset_at(tz: Tz, t: DateTime<Utc>) -> i32 {
    t.with_timezone(&tz).offset().fix().local_minus_utc()
}

/// How polite we are to partners; built from `[fetch]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Politeness {
    /// First back-off step after a failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Back-off never exceeds this: a failing source is retried at least this often.
    pub backoff_cap: Duration,
    /// A partner's `ttl`/`max-age` lengthens the interval up to this much at most, so a
    /// careless "one year" does not stop us polling.
    pub max_partner_interval: Duration,
    /// `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
    /// Jitter spreads fire times by at most this fraction of the schedule's interval...
    pub jitter_fraction: f64,
    /// ...and at most this long.
    pub max_jitter: Duration,
}

impl Default for Politeness {
    fn default() -> Self {
        Politeness {
            backoff_base: Duration::from_secs(5 * 60),
            backoff_cap: Duration::from_secs(6 * 3600),
            max_partner_interval: Duration::from_secs(24 * 3600),
            max_retry_after: Duration::from_secs(7 * 24 * 3600),
            jitter_fraction: 0.2,
            max_jitter: Duration::from_secs(10 * 60),
        }
    }
}

/// What the last attempt taught us about a source's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// New content (200) or unchanged (304): back to the schedule, lengthened by the
    /// partner's caching hints (RSS `ttl`, `Cache-Control: max-age`).
    Success {
        ttl: Option<Duration>,
        max_age: Option<Duration>,
    },
    /// The `consecutive`-th failure in a row (1 for the first), with the partner's
    /// `Retry-After` if it sent one.
    Failure {
        consecutive: u32,
        retry_after: Option<Duration>,
    },
}

/// When a source is due next, for the store, `feedwerk sources` and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NextFetch {
    pub at: DateTime<Utc>,
}

/// When to fetch a source again after `outcome`, attempted at `now`.
pub fn next_fetch(
    cron: &Cron,
    tz: Tz,
    source_id: &str,
    now: DateTime<Utc>,
    outcome: Outcome,
    p: &Politeness,
) -> NextFetch {
    let scheduled = scheduled_after(cron, tz, source_id, now, p);
    let later = |extra: Duration| now + chrono::Duration::from_std(extra).unwrap_or_default();
    match outcome {
        Outcome::Success { ttl, max_age } => {
            let hint = ttl.max(max_age).map(|h| h.min(p.max_partner_interval));
            NextFetch {
                at: hint.map_or(scheduled, |h| scheduled.max(later(h))),
            }
        }
        Outcome::Failure {
            consecutive,
            retry_after,
        } => {
            let backoff = backoff(source_id, consecutive, now, p);
            let mut at = scheduled.max(later(backoff));
            if let Some(ra) = retry_after {
                at = at.max(later(ra.min(p.max_retry_after)));
            }
            NextFetch { at }
        }
    }
}

/// The next cron fire after `now`, plus this source's jitter for that fire.
pub fn scheduled_after(
    cron: &Cron,
    tz: Tz,
    source_id: &str,
    now: DateTime<Utc>,
    p: &Politeness,
) -> DateTime<Utc> {
    // A schedule that never fires again (a past year) is polled daily rather than never.
    let Some(fire) = cron.next_after(now, tz) else {
        return now + chrono::Duration::days(1);
    };
    let interval = cron
        .next_after(fire, tz)
        .map(|n| (n - fire).to_std().unwrap_or_default())
        .unwrap_or(Duration::from_secs(3600));
    let spread = interval.mul_f64(p.jitter_fraction).min(p.max_jitter);
    let u = unit(&[source_id.as_bytes(), &fire.timestamp().to_le_bytes()]);
    fire + chrono::Duration::from_std(spread.mul_f64(u)).unwrap_or_default()
}

/// Exponential back-off for the `consecutive`-th failure, capped, with up to 20 % jitter
/// downwards (so the cap is a real bound and sources failing together drift apart).
pub fn backoff(source_id: &str, consecutive: u32, now: DateTime<Utc>, p: &Politeness) -> Duration {
    let exp = consecutive.saturating_sub(1).min(30);
    let raw = p
        .backoff_base
        .checked_mul(1u32 << exp)
        .unwrap_or(p.backoff_cap)
        .min(p.backoff_cap);
    let u = unit(&[
        source_id.as_bytes(),
        &consecutive.to_le_bytes(),
        &now.timestamp().to_le_bytes(),
    ]);
    raw.mul_f64(1.0 - 0.2 * u)
}

/// A number in [0, 1) derived from the inputs: deterministic, so tests and restarts see
/// the same spread, yet different for every source and fire time.
fn unit(parts: &[&[u8]]) -> f64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let b = h.finalize();
    let n = u64::from_le_bytes(b.as_bytes()[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Every fire time in (from, to], walking the schedule like the daemon does.
    fn fires(expr: &str, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let c = Cron::parse(expr).unwrap();
        let (mut t, to) = (utc(from), utc(to));
        let mut out = Vec::new();
        while let Some(n) = c.next_after(t, Berlin) {
            if n > to {
                break;
            }
            assert!(n > t, "time must move forward");
            out.push(n);
            t = n;
        }
        out
    }

    #[test]
    fn five_and_six_field_expressions_agree() {
        let five = Cron::parse("*/15 * * * *").unwrap();
        let six = Cron::parse("0 */15 * * * *").unwrap();
        let t = utc("2026-06-01T10:07:00Z");
        assert_eq!(five.next_after(t, Berlin), six.next_after(t, Berlin));
        assert_eq!(six.next_after(t, Berlin), Some(utc("2026-06-01T10:15:00Z")));
        assert!(Cron::parse("every hour").is_err());
    }

    #[test]
    fn fixed_time_job_runs_once_on_the_spring_forward_day() {
        // 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let f = fires(
            "0 30 2 * * *",
            "2026-03-27T12:00:00Z",
            "2026-03-31T12:00:00Z",
        );
        assert_eq!(
            f,
            vec![
                utc("2026-03-28T01:30:00Z"), // 02:30 CET
                utc("2026-03-29T01:30:00Z"), // 03:30 CEST: shifted by the gap, not skipped
                utc("2026-03-30T00:30:00Z"), // 02:30 CEST
                utc("2026-03-31T00:30:00Z"),
            ]
        );
    }

    #[test]
    fn fixed_time_job_runs_once_on_the_fall_back_night() {
        // 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let f = fires(
            "0 30 2 * * *",
            "2026-10-24T12:00:00Z",
            "2026-10-26T12:00:00Z",
        );
        assert_eq!(
            f,
            vec![
                utc("2026-10-25T00:30:00Z"), // the first 02:30 (CEST) only
                utc("2026-10-26T01:30:00Z"), // 02:30 CET
            ]
        );
    }

    #[test]
    fn hourly_job_keeps_real_time_hours_across_both_nights() {
        for (from, to) in [
            ("2026-03-28T20:00:00Z", "2026-03-29T04:00:00Z"),
            ("2026-10-24T20:00:00Z", "2026-10-25T04:00:00Z"),
        ] {
            let f = fires("0 0 * * * *", from, to);
            assert_eq!(f.len(), 8, "{from}: {f:?}");
            for w in f.windows(2) {
                assert_eq!(w[1] - w[0], chrono::Duration::hours(1), "{w:?}");
            }
        }
    }

    #[test]
    fn quarter_hour_job_has_no_gaps_or_doubles_on_dst_nights() {
        for (from, to) in [
            ("2026-03-28T22:00:00Z", "2026-03-29T04:00:00Z"),
            ("2026-10-24T22:00:00Z", "2026-10-25T04:00:00Z"),
        ] {
            let f = fires("*/15 * * * *", from, to);
            assert_eq!(f.len(), 24, "{from}: {f:?}");
            for w in f.windows(2) {
                assert_eq!(w[1] - w[0], chrono::Duration::minutes(15), "{w:?}");
            }
        }
    }

    #[test]
    fn fixed_hour_window_job_runs_each_wall_time_once_on_fall_back() {
        // Every 30 minutes between 01:00 and 03:59 local: on the fall-back night the
        // 02:xx wall times come once each, not twice.
        let f = fires(
            "0 0,30 1-3 * * *",
            "2026-10-24T20:00:00Z",
            "2026-10-25T06:00:00Z",
        );
        let local: Vec<String> = f
            .iter()
            .map(|t| t.with_timezone(&Berlin).format("%H:%M%z").to_string())
            .collect();
        assert_eq!(
            local,
            [
                "01:00+0200",
                "01:30+0200",
                "02:00+0200",
                "02:30+0200",
                "03:00+0100",
                "03:30+0100"
            ]
        );
    }

    #[test]
    fn partner_hints_only_lengthen_the_interval() {
        let c = Cron::parse("0 */15 * * * *").unwrap();
        let p = Politeness {
            jitter_fraction: 0.0,
            ..Politeness::default()
        };
        let now = utc("2026-06-01T10:00:00Z");
        let plain = next_fetch(
            &c,
            Berlin,
            "efus",
            now,
            Outcome::Success {
                ttl: None,
                max_age: None,
            },
            &p,
        );
        assert_eq!(plain.at, utc("2026-06-01T10:15:00Z"));
        // A short max-age cannot make us poll more often than the schedule.
        let short = next_fetch(
            &c,
            Berlin,
            "efus",
            now,
            Outcome::Success {
                ttl: None,
                max_age: Some(Duration::from_secs(60)),
            },
            &p,
        );
        assert_eq!(short.at, plain.at);
        // An hour-long ttl lengthens it.
        let ttl = next_fetch(
            &c,
            Berlin,
            "efus",
            now,
            Outcome::Success {
                ttl: Some(Duration::from_secs(3600)),
                max_age: Some(Duration::from_secs(60)),
            },
            &p,
        );
        assert_eq!(ttl.at, utc("2026-06-01T11:00:00Z"));
        // A year-long hint is clamped so polling never stops.
        let year = next_fetch(
            &c,
            Berlin,
            "efus",
            now,
            Outcome::Success {
                ttl: Some(Duration::from_secs(365 * 86400)),
                max_age: None,
            },
            &p,
        );
        assert_eq!(year.at, utc("2026-06-02T10:00:00Z"));
    }

    #[test]
    fn backoff_grows_exponentially_to_the_cap_and_keeps_retrying() {
        let p = Politeness::default();
        let now = utc("2026-06-01T10:00:00Z");
        let mut last = Duration::ZERO;
        for n in 1..=12 {
            let b = backoff("lpr", n, now, &p);
            assert!(b <= p.backoff_cap, "{n}: {b:?}");
            let raw = p.backoff_base * 2u32.pow(n - 1);
            let raw = raw.min(p.backoff_cap);
            assert!(b >= raw.mul_f64(0.8), "{n}: jitter at most 20 %");
            if raw < p.backoff_cap {
                assert!(b > last.mul_f64(1.2), "{n}: grows");
            }
            last = b;
        }
        // Far past the cap it still retries, at the capped interval.
        let c = Cron::parse("0 */15 * * * *").unwrap();
        let nf = next_fetch(
            &c,
            Berlin,
            "lpr",
            now,
            Outcome::Failure {
                consecutive: 500,
                retry_after: None,
            },
            &p,
        );
        assert!(nf.at <= now + chrono::Duration::hours(6));
        assert!(nf.at >= now + chrono::Duration::minutes(4 * 60 + 48));
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let c = Cron::parse("0 */15 * * * *").unwrap();
        let p = Politeness::default();
        let now = utc("2026-06-01T10:00:00Z");
        let nf = next_fetch(
            &c,
            Berlin,
            "dpt-i",
            now,
            Outcome::Failure {
                consecutive: 1,
                retry_after: Some(Duration::from_secs(7200)),
            },
            &p,
        );
        assert!(nf.at >= now + chrono::Duration::hours(2));
        let nf = next_fetch(
            &c,
            Berlin,
            "dpt-i",
            now,
            Outcome::Failure {
                consecutive: 1,
                retry_after: Some(Duration::from_secs(400 * 86400)),
            },
            &p,
        );
        assert_eq!(nf.at, now + chrono::Duration::days(7));
    }

    #[test]
    fn jitter_spreads_a_thousand_sources_over_the_window() {
        let c = Cron::parse("0 */15 * * * *").unwrap();
        let p = Politeness::default();
        let now = utc("2026-06-01T10:00:00Z");
        let mut per_second = std::collections::HashMap::new();
        for i in 0..1000 {
            let t = scheduled_after(&c, Berlin, &format!("partner-{i}"), now, &p);
            // Jitter stays within 20 % of the 15-minute interval, after the fire time.
            assert!(t >= utc("2026-06-01T10:15:00Z"));
            assert!(t < utc("2026-06-01T10:18:00Z"));
            *per_second.entry(t.timestamp()).or_insert(0) += 1;
        }
        let busiest = per_second.values().max().unwrap();
        assert!(
            *busiest <= 20,
            "at most 20 fetches start in one second, got {busiest}"
        );
        assert!(per_second.len() > 150, "spread over many seconds");
    }
}
