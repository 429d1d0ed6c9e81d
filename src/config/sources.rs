//! `[[source]]` and `[[channel]]` entries → [`Source`] and [`Channel`]: ids unique and
//! well-formed, each kind with the keys it needs (and none it cannot use), URLs,
//! selectors, date formats, zones, schedules, encodings and embed hosts checked.
//! The single-table sections are `sections`'s.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono_tz::Tz;
use toml::Spanned;
use url::Url;

use super::problems::{self, parse_tz, positive, valid_id, Problems};
use super::raw::{RawChannel, RawSource};
use super::sections::relative_to;
use crate::model::{Channel, ChannelFilter, PageSelectors, Source, SourceId, SourceKind};

/// What every source reads from the rest of the file.
pub(super) struct SourceDefaults<'a> {
    /// The config file's directory: local paths are relative to it.
    pub(super) dir: &'a Path,
    /// `site.timezone`, for sources without their own.
    pub(super) timezone: Tz,
}

impl Source {
    /// The `i`-th `[[source]]`; `None` when its kind cannot be built (the problems say
    /// why). `seen` collects the ids, so later ones are checked for duplicates.
    pub(super) fn from_raw(
        i: usize,
        s: RawSource,
        defaults: &SourceDefaults,
        seen: &mut HashSet<String>,
        p: &mut Problems,
    ) -> Option<Source> {
        let key = |k: &str| format!("source[{i}].{k}");
        let id = s.id.get_ref().clone();
        if !valid_id(&id) {
            p.add(
                key("id"),
                s.id.span(),
                "use lower-case letters, digits, `-` and `_`",
            );
        }
        if !seen.insert(id.clone()) {
            p.add(
                key("id"),
                s.id.span(),
                format!("duplicate source id `{id}`"),
            );
        }
        let kind = source_kind(&s, &id, &key, defaults.dir, p);
        if let Some(sel) = &s.selectors {
            if !matches!(kind, Some(SourceKind::Page { .. }) | None) {
                p.add(
                    key("selectors"),
                    sel.span(),
                    "only page sources take selectors",
                );
            }
        }
        if let Some(f) = &s.date_format {
            if !matches!(kind, Some(SourceKind::Page { .. }) | None) {
                p.add(
                    key("date_format"),
                    f.span(),
                    "only page sources take date_format (feeds carry their own date format)",
                );
            }
        }
        let timezone = s
            .timezone
            .as_ref()
            .and_then(|t| parse_tz(t, &key("timezone"), p))
            .unwrap_or(defaults.timezone);
        let schedule = s
            .schedule
            .as_ref()
            .and_then(|sch| problems::schedule(sch, &key("schedule"), p));
        let homepage = s
            .homepage
            .as_ref()
            .and_then(|h| homepage(h, &key("homepage"), p));
        let language = s
            .language
            .as_ref()
            .and_then(|l| language(l, &key("language"), p));
        let encoding = s
            .encoding
            .as_ref()
            .and_then(|e| encoding(e, &key("encoding"), p));
        let allow_iframe_hosts = iframe_hosts(&s.allow_iframe_hosts, &key("allow_iframe_hosts"), p);
        let tag_map = tag_vocabulary(s.tags);
        let kind = kind?;
        let priority = s
            .priority
            .unwrap_or(if matches!(kind, SourceKind::Local { .. }) {
                100
            } else {
                50
            });
        Some(Source {
            title: s.title.unwrap_or_else(|| id.clone()),
            id: SourceId(id),
            kind,
            homepage,
            priority,
            language,
            timezone,
            schedule,
            encoding,
            allow_iframe_hosts,
            tag_map,
        })
    }
}

/// `kind` with the keys it needs: `path` for local, `url` for feed, `url` and
/// `selectors` (and optional `date_format`) for page.
fn source_kind(
    s: &RawSource,
    id: &str,
    key: &dyn Fn(&str) -> String,
    dir: &Path,
    p: &mut Problems,
) -> Option<SourceKind> {
    let url = s.url.as_ref().and_then(|u| match Url::parse(u.get_ref()) {
        Ok(x) if matches!(x.scheme(), "http" | "https") => Some(x),
        Ok(_) => {
            p.add(key("url"), u.span(), "must be an http(s) URL");
            None
        }
        Err(e) => {
            p.add(
                key("url"),
                u.span(),
                format!("invalid URL `{}`: {e}", u.get_ref()),
            );
            None
        }
    });
    match s.kind.get_ref().as_str() {
        "local" => match &s.path {
            Some(path) => Some(SourceKind::Local {
                path: relative_to(dir, path),
            }),
            None => {
                p.add(key("path"), s.kind.span(), "a local source needs `path`");
                None
            }
        },
        "feed" => match (url, &s.url) {
            (Some(url), _) => Some(SourceKind::Feed { url }),
            (None, None) => {
                p.add(key("url"), s.kind.span(), "a feed source needs `url`");
                None
            }
            (None, Some(_)) => None,
        },
        "page" => page_kind(s, url, id, key, p),
        other => {
            p.add(
                key("kind"),
                s.kind.span(),
                format!("unknown kind `{other}` (expected local, feed or page)"),
            );
            None
        }
    }
}

fn page_kind(
    s: &RawSource,
    url: Option<Url>,
    id: &str,
    key: &dyn Fn(&str) -> String,
    p: &mut Problems,
) -> Option<SourceKind> {
    let selectors = match &s.selectors {
        Some(sel) => {
            check_selectors(sel.get_ref(), id, &key("selectors"), sel.span(), p);
            Some(sel.get_ref().clone())
        }
        None => {
            p.add(
                key("selectors"),
                s.kind.span(),
                "a page source needs `selectors`",
            );
            None
        }
    };
    let date_formats = s.date_format.clone().map(|f| {
        let span = f.span();
        let v = f.into_inner().into_vec();
        if v.is_empty() {
            p.add(
                key("date_format"),
                span.clone(),
                format!("source `{id}`: give at least one format, e.g. \"%d.%m.%Y\""),
            );
        }
        for fmt in &v {
            if let Err(e) = crate::source::page::check_date_format(fmt) {
                p.add(
                    key("date_format"),
                    span.clone(),
                    format!("source `{id}`: {e}"),
                );
            }
        }
        v
    });
    match (url, selectors, &s.url) {
        (Some(url), Some(selectors), _) => Some(SourceKind::Page {
            url,
            selectors,
            date_formats: date_formats.unwrap_or_default(),
        }),
        (_, _, None) => {
            p.add(key("url"), s.kind.span(), "a page source needs `url`");
            None
        }
        _ => None,
    }
}

fn check_selectors(
    sel: &PageSelectors,
    id: &str,
    key: &str,
    span: std::ops::Range<usize>,
    p: &mut Problems,
) {
    for (name, v) in crate::source::page::fields(sel) {
        if let Err(e) = crate::source::page::check_selector(v) {
            p.add(
                format!("{key}.{name}"),
                span.clone(),
                format!("source `{id}`: invalid CSS selector `{v}`: {e}"),
            );
        }
    }
}

fn homepage(h: &Spanned<String>, key: &str, p: &mut Problems) -> Option<Url> {
    match Url::parse(h.get_ref()) {
        Ok(u) => Some(u),
        Err(e) => {
            p.add(key, h.span(), format!("invalid URL: {e}"));
            None
        }
    }
}

/// A language tag, normalised as items' tags are (`de-de` → `de-DE`).
fn language(l: &Spanned<String>, key: &str, p: &mut Problems) -> Option<String> {
    let t = crate::normalise::lang::normalise_tag(l.get_ref());
    if t.is_none() {
        p.add(key, l.span(), "not a language tag");
    }
    t
}

/// An encoding label `encoding_rs` knows (`windows-1252`, `latin1`, …), kept as written.
fn encoding(e: &Spanned<String>, key: &str, p: &mut Problems) -> Option<String> {
    if encoding_rs::Encoding::for_label(e.get_ref().as_bytes()).is_none() {
        p.add(key, e.span(), format!("unknown encoding `{}`", e.get_ref()));
        None
    } else {
        Some(e.get_ref().clone())
    }
}

/// `allow_iframe_hosts`: bare host names, lower-cased.
fn iframe_hosts(hosts: &[Spanned<String>], key: &str, p: &mut Problems) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| {
            let host = h.get_ref().trim().to_ascii_lowercase();
            let bare = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if bare {
                Some(host)
            } else {
                p.add(
                    key,
                    h.span(),
                    format!(
                        "`{}` is not a host name (write e.g. \"www.youtube-nocookie.com\", without scheme or path)",
                        h.get_ref()
                    ),
                );
                None
            }
        })
        .collect()
}

/// What every channel reads from the rest of the file.
pub(super) struct ChannelDefaults<'a> {
    /// `site.title`, for the default channel title.
    pub(super) site_title: &'a str,
    /// `publish.max_items`, for channels without their own.
    pub(super) max_items: usize,
    /// Every configured source id (also those with problems), for `sources = [...]`.
    pub(super) source_ids: &'a HashSet<String>,
}

impl Channel {
    /// The `i`-th `[[channel]]`; `ids` collects channel ids for the duplicate check.
    pub(super) fn from_raw(
        i: usize,
        c: RawChannel,
        defaults: &ChannelDefaults,
        ids: &mut HashSet<String>,
        p: &mut Problems,
    ) -> Channel {
        let key = |k: &str| format!("channel[{i}].{k}");
        let id = c.id.get_ref().clone();
        if !valid_id(&id) {
            p.add(
                key("id"),
                c.id.span(),
                "use lower-case letters, digits, `-` and `_`",
            );
        }
        if !ids.insert(id.clone()) {
            p.add(
                key("id"),
                c.id.span(),
                format!("duplicate channel id `{id}`"),
            );
        }
        for s in &c.sources {
            if !defaults.source_ids.contains(s.get_ref()) {
                p.add(
                    key("sources"),
                    s.span(),
                    format!("unknown source `{}`", s.get_ref()),
                );
            }
        }
        Channel {
            stem: format!("channels/{id}"),
            title: c
                .title
                .unwrap_or_else(|| format!("{} – {id}", defaults.site_title)),
            filter: ChannelFilter {
                sources: c
                    .sources
                    .into_iter()
                    .map(|s| SourceId(s.into_inner()))
                    .collect(),
                tags: c.tags,
                languages: c.languages,
            },
            max_items: c
                .max_items
                .as_ref()
                .map(|m| positive(m, &key("max_items"), p))
                .unwrap_or(defaults.max_items),
        }
    }
}

/// `Tag = ["Alias", …]` → lower-cased alias (and the tag itself) → tag.
pub(super) fn tag_vocabulary(raw: BTreeMap<String, Vec<String>>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for (tag, aliases) in raw {
        tags.insert(tag.to_lowercase(), tag.clone());
        for a in aliases {
            tags.insert(a.to_lowercase(), tag.clone());
        }
    }
    tags
}
