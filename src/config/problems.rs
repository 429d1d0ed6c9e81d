//! Collecting config problems with their key and line, and the checks on single values
//! that several sections share (counts, durations, zones, cron, ids). A check reports
//! its problem and hands back a stand-in, so validation goes on and every problem in the
//! file is reported at once.

use std::ops::Range;
use std::time::Duration;

use chrono_tz::Tz;
use toml::Spanned;

use super::ConfigProblem;
use crate::schedule::Cron;

/// Collects problems with line numbers computed from spans in `text`.
pub(super) struct Problems<'a> {
    text: &'a str,
    pub(super) list: Vec<ConfigProblem>,
}

impl<'a> Problems<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Problems { text, list: vec![] }
    }

    /// The 1-based line of `span`; `None` for the empty span of a defaulted value.
    fn line_of(&self, span: Range<usize>) -> Option<usize> {
        if span == (0..0) {
            return None;
        }
        Some(
            self.text[..span.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1,
        )
    }

    pub(super) fn add(
        &mut self,
        key: impl Into<String>,
        span: Range<usize>,
        msg: impl Into<String>,
    ) {
        let line = self.line_of(span);
        self.list.push(ConfigProblem {
            key: key.into(),
            line,
            message: msg.into(),
        });
    }
}

pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(super) fn positive(v: &Spanned<i64>, key: &str, p: &mut Problems) -> usize {
    if *v.get_ref() < 1 {
        p.add(key, v.span(), "must be at least 1");
        1
    } else {
        *v.get_ref() as usize
    }
}

pub(super) fn duration(v: &Spanned<String>, key: &str, p: &mut Problems) -> Option<Duration> {
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            p.add(
                key,
                v.span(),
                format!(
                    "invalid duration `{}` ({e}); e.g. \"30s\", \"90d\"",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

pub(super) fn parse_tz(v: &Spanned<String>, key: &str, p: &mut Problems) -> Option<Tz> {
    match v.get_ref().parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            p.add(
                key,
                v.span(),
                format!("unknown time zone `{}` (e.g. `Europe/Berlin`)", v.get_ref()),
            );
            None
        }
    }
}

/// A `schedule` key, parsed once into the [`Cron`] that `refresh` and `daemon` use.
pub(super) fn schedule(v: &Spanned<String>, key: &str, p: &mut Problems) -> Option<Cron> {
    match Cron::parse(v.get_ref()) {
        Ok(c) => Some(c),
        Err(e) => {
            p.add(key, v.span(), e);
            None
        }
    }
}

/// Best-effort dotted key for a toml error span: the table header above and the key on
/// the line, so "unknown field" errors still name where they are.
pub(super) fn key_at(text: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else {
        return "(file)".into();
    };
    let upto = &text[..span.start.min(text.len())];
    let line_start = upto.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(text.len());
    let line = text[line_start..line_end].trim();
    let table = upto
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).to_owned());
    let key = line.split('=').next().unwrap_or("").trim();
    match (table, key.is_empty() || line.starts_with('[')) {
        (Some(t), false) => format!("{t}.{key}"),
        (Some(t), true) => t,
        (None, false) => key.to_owned(),
        (None, true) => "(file)".into(),
    }
}
