//! `feedwerk import`: turns a feed, a news page or a plain-text news listing into local
//! posts — one `YYYY-MM-DD-slug.md` per item with TOML front matter between `+++` lines,
//! the format `source::local` reads.
//!
//! It owns the plain-text listing format (a `DD.MM.YYYY` date line, a title line, then
//! paragraphs), the file naming, the front matter it writes, and the rule that an
//! existing post is never overwritten. Feeds and pages arrive here already read and
//! normalised by [`crate::probe`]; their sanitised HTML is converted to Markdown.
//!
//! Each post is checked by reading it back with `source::local::parse_post` before it
//! is written, and written atomically without replacing an existing file, so an import
//! never leaves a half-written or unreadable post behind.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use url::Url;

use crate::fetch::Fetcher;
use crate::model::{DateSource, Item, Source};
use crate::probe::{self, Location, ProbeError, ProbeOptions, Sniffed};
use crate::source::local;

/// One post to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub title: String,
    pub published: DateTime<Utc>,
    pub updated: Option<DateTime<Utc>>,
    /// Markdown.
    pub body: String,
    pub summary: Option<String>,
    pub tags: Vec<String>,
    pub authors: Vec<String>,
    pub language: Option<String>,
    /// Written as `link` (the post then points there instead of its own page).
    pub link: Option<Url>,
    /// Where it came from, for messages.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an import did, file by file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    pub written: Vec<PathBuf>,
    /// Already there (same file name, or a post with the same date and title).
    pub existing: Vec<(PathBuf, String)>,
    /// Items that could not be turned into posts, and why.
    pub problems: Vec<String>,
}

// ---- plain-text listings ----------------------------------------------------------------

/// Reads a news listing as copied from a web page: a date line (`09.10.2017`), the title
/// on the next non-empty line, then the body's paragraphs until the next date line.
/// Lines before the first date (a page heading such as "Aktuelles") are not a post.
/// Bullet lines (`•`, `·`, `-`, `*`, `–`) become a Markdown list.
pub fn read_text_listing(text: &str, tz: Tz, origin: &str) -> (Vec<Draft>, Vec<String>) {
    let mut drafts = Vec::new();
    let mut problems = Vec::new();
    let mut current: Option<Pending> = None;
    let finish = |cur: Option<Pending>, drafts: &mut Vec<Draft>, problems: &mut Vec<String>| {
        let Some((line, date, title, body)) = cur else {
            return;
        };
        match title {
            Some(title) => drafts.push(Draft {
                title,
                published: date,
                updated: None,
                body: paragraphs_to_markdown(&body),
                summary: None,
                tags: Vec::new(),
                authors: Vec::new(),
                language: None,
                link: None,
                origin: format!("{origin}:{line}"),
            }),
            None => problems.push(format!(
                "{origin}:{line}: a date line without a title after it; skipped"
            )),
        }
    };
    for (i, raw) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = raw.replace('\u{a0}', " ");
        let trimmed = line.trim();
        if let Some(date) = date_line(trimmed, tz) {
            finish(current.take(), &mut drafts, &mut problems);
            current = Some((i + 1, date, None, Vec::new()));
            continue;
        }
        let Some((_, _, title, body)) = current.as_mut() else {
            continue;
        };
        if title.is_none() {
            if !trimmed.is_empty() {
                *title = Some(crate::normalise::text::collapse_whitespace(trimmed));
            }
            continue;
        }
        body.push(trimmed.to_owned());
    }
    finish(current.take(), &mut drafts, &mut problems);
    (drafts, problems)
}

/// A listing item being read: date line number, date, title, body lines.
type Pending = (usize, DateTime<Utc>, Option<String>, Vec<String>);

/// `DD.MM.YYYY` (optionally `HH:MM` after it) alone on a line → the instant in `tz`.
fn date_line(line: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let looks = !line.is_empty()
        && line.len() <= 16
        && line.as_bytes()[0].is_ascii_digit()
        && line
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ':' | ' '));
    if !looks {
        return None;
    }
    crate::dates::parse_with_formats(line, &["%d.%m.%Y".into(), "%d.%m.%Y %H:%M".into()], tz)
}

/// Lines (blank ones separate paragraphs) → Markdown with the text's own characters
/// escaped, so "15. Mitgliederversammlung" at a line start stays text, not a list.
fn paragraphs_to_markdown(lines: &[String]) -> String {
    let mut blocks: Vec<String> = Vec::new();
    let mut para: Vec<String> = Vec::new();
    let mut list: Vec<String> = Vec::new();
    let flush = |para: &mut Vec<String>, list: &mut Vec<String>, blocks: &mut Vec<String>| {
        if !para.is_empty() {
            blocks.push(para.join(" "));
            para.clear();
        }
        if !list.is_empty() {
            blocks.push(list.join("\n"));
            list.clear();
        }
    };
    for l in lines {
        let l = l.trim();
        if l.is_empty() {
            flush(&mut para, &mut list, &mut blocks);
            continue;
        }
        if let Some(item) = ["• ", "· ", "- ", "* ", "– "]
            .iter()
            .find_map(|b| l.strip_prefix(b))
        {
            if !para.is_empty() {
                blocks.push(para.join(" "));
                para.clear();
            }
            list.push(format!(
                "- {}",
                escape_markdown(&crate::normalise::text::collapse_whitespace(item))
            ));
            continue;
        }
        if !list.is_empty() {
            blocks.push(list.join("\n"));
            list.clear();
        }
        para.push(escape_markdown(
            &crate::normalise::text::collapse_whitespace(l),
        ));
    }
    flush(&mut para, &mut list, &mut blocks);
    blocks.join("\n\n")
}

/// Escapes what Markdown would read as markup in plain text.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '|'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    // A line start that would open a block: "15. …" (ordered list), "- …", "+ …", "= …".
    let digits = out.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && matches!(out[digits..].chars().next(), Some('.' | ')')) {
        out.insert(digits, '\\');
    } else if matches!(out.chars().next(), Some('-' | '+' | '=')) {
        out.insert(0, '\\');
    }
    out
}

// ---- feeds and pages ---------------------------------------------------------------------

/// Normalised items → drafts. `keep_links`: the posts keep pointing at the original
/// pages (`link`), instead of getting pages of their own under the site.
pub fn drafts_from_items(items: &[Item], keep_links: bool) -> Vec<Draft> {
    items
        .iter()
        .map(|i| {
            let body = i
                .content_html
                .as_deref()
                .map(html_to_markdown)
                .unwrap_or_else(|| escape_markdown(&i.summary));
            Draft {
                title: i.title.clone(),
                published: i.published,
                updated: i.updated,
                body,
                summary: None,
                tags: i.tags.clone(),
                authors: i.authors.clone(),
                language: i.language.clone(),
                link: if keep_links { i.url.clone() } else { None },
                origin: i
                    .url
                    .as_ref()
                    .map(Url::to_string)
                    .unwrap_or_else(|| i.id.to_string()),
            }
        })
        .collect()
}

/// Sanitised HTML → Markdown (htmd, a turndown port).
pub fn html_to_markdown(html: &str) -> String {
    match htmd::convert(html) {
        Ok(md) => md.trim().to_owned(),
        // htmd only fails on I/O into its own buffer; keep the HTML, which Markdown allows.
        Err(_) => html.to_owned(),
    }
}

// ---- the command ------------------------------------------------------------------------

/// What to import from.
#[derive(Debug, Clone)]
pub enum ImportFrom {
    /// A URL or file, read as a feed, as a page (when `opts.selectors` is set) or as a
    /// plain-text listing.
    Location {
        location: Location,
        opts: ProbeOptions,
        base_url: Option<Url>,
    },
    /// What a configured feed or page source provides now.
    Source(Source),
}

#[derive(Debug, thiserror::Error)]
pub enum ImportRunError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Write(#[from] ImportError),
    #[error("source `{0}` is local already: its posts are files")]
    LocalSource(String),
    #[error("{0}: no news found (expected a feed, a page with --selectors, or a text listing with `DD.MM.YYYY` date lines)")]
    NothingFound(String),
}

/// Everything `feedwerk import` needs besides what to read.
#[derive(Debug, Clone)]
pub struct ImportTarget<'a> {
    pub into: &'a Path,
    /// Zone for file names and front-matter dates (the site's).
    pub timezone: Tz,
    /// The site's base URL (posts are read back against it).
    pub site_url: &'a Url,
    /// Local source id the directory belongs to (for reading posts back).
    pub local_source: &'a str,
    pub keep_links: bool,
}

/// Reads `from`, turns its items into posts and writes the new ones into `target.into`.
pub async fn import(
    from: &ImportFrom,
    target: &ImportTarget<'_>,
    fetcher: &Fetcher,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportRunError> {
    let (location, opts, base) = match from {
        ImportFrom::Source(s) => {
            let Some(url) = s.kind.url() else {
                return Err(ImportRunError::LocalSource(s.id.to_string()));
            };
            (
                Location::Url(url.clone()),
                ProbeOptions::from_source(s),
                None,
            )
        }
        ImportFrom::Location {
            location,
            opts,
            base_url,
        } => (location.clone(), opts.clone(), base_url.clone()),
    };
    let doc = probe::load(&location, fetcher, base.as_ref()).await?;
    let mut problems = Vec::new();
    let drafts = if opts.selectors.is_none() && probe::sniff(&doc.body) == Sniffed::Text {
        let decoded = crate::source::decode::decode_html(
            &doc.body,
            doc.charset.as_deref(),
            opts.encoding.as_deref(),
        );
        let (drafts, p) = read_text_listing(&decoded.text, opts.timezone, &location.to_string());
        problems.extend(p);
        drafts
    } else {
        let pr = probe::read(&doc, &opts, now)?;
        problems.extend(pr.parsed.problems.iter().cloned());
        problems.extend(pr.errors.iter().map(ToString::to_string));
        // An undated item would be dated today: a post must not pretend that.
        let (dated, undated): (Vec<Item>, Vec<Item>) = pr
            .items
            .into_iter()
            .partition(|i| i.date_source == DateSource::Declared);
        for i in undated {
            problems.push(format!(
                "{}: \"{}\" has no date; not imported (add it by hand with the right date)",
                i.url
                    .as_ref()
                    .map(Url::to_string)
                    .unwrap_or_else(|| i.id.to_string()),
                i.title
            ));
        }
        drafts_from_items(&dated, target.keep_links)
    };
    if drafts.is_empty() && problems.is_empty() {
        return Err(ImportRunError::NothingFound(location.to_string()));
    }
    let mut report = write_posts(
        target.into,
        &drafts,
        target.timezone,
        target.site_url,
        target.local_source,
    )?;
    problems.append(&mut report.problems);
    report.problems = problems;
    Ok(report)
}

// ---- writing -----------------------------------------------------------------------------

/// `2017-10-09-15-defus-mitgliederversammlung-in-stuttgart`: the local date and the
/// title, German letters spelled out (`ä` → `ae`, `ß` → `ss`) as German URLs do.
pub fn file_stem(title: &str, published: DateTime<Utc>, tz: Tz) -> String {
    let date = published.with_timezone(&tz).format("%Y-%m-%d");
    let mut spelled = String::with_capacity(title.len());
    for c in title.chars() {
        match c {
            'ä' => spelled.push_str("ae"),
            'ö' => spelled.push_str("oe"),
            'ü' => spelled.push_str("ue"),
            'Ä' => spelled.push_str("Ae"),
            'Ö' => spelled.push_str("Oe"),
            'Ü' => spelled.push_str("Ue"),
            'ß' => spelled.push_str("ss"),
            c => spelled.push(c),
        }
    }
    let mut slug = slug::slugify(spelled);
    if slug.len() > 80 {
        let cut = slug[..80].rfind('-').unwrap_or(80);
        slug.truncate(cut);
    }
    if slug.is_empty() {
        slug = "post".into();
    }
    format!("{date}-{slug}")
}

/// The TOML front matter and body of one post.
pub fn render_post(d: &Draft, tz: Tz) -> String {
    let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let list = |v: &[String]| {
        toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect()).to_string()
    };
    let mut out = String::from("+++\n");
    out.push_str(&format!("title = {}\n", s(&d.title)));
    out.push_str(&format!("date = {}\n", toml_date(d.published, tz)));
    if let Some(u) = d.updated {
        out.push_str(&format!("updated = {}\n", toml_date(u, tz)));
    }
    if let Some(sum) = &d.summary {
        out.push_str(&format!("summary = {}\n", s(sum)));
    }
    if !d.tags.is_empty() {
        out.push_str(&format!("tags = {}\n", list(&d.tags)));
    }
    if !d.authors.is_empty() {
        out.push_str(&format!("authors = {}\n", list(&d.authors)));
    }
    if let Some(l) = &d.language {
        out.push_str(&format!("lang = {}\n", s(l)));
    }
    if let Some(l) = &d.link {
        out.push_str(&format!("link = {}\n", s(l.as_str())));
    }
    out.push_str("+++\n\n");
    out.push_str(d.body.trim());
    out.push('\n');
    out
}

/// A TOML date: `2017-10-09` when it is local midnight (posts dated by day), else a
/// date-time with the zone's offset.
fn toml_date(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    if local.time() == NaiveTime::MIN {
        local.format("%Y-%m-%d").to_string()
    } else {
        local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Writes each draft into `dir` unless it is already there. `base_url` and `source` are
/// used only to read each post back before it is written.
pub fn write_posts(
    dir: &Path,
    drafts: &[Draft],
    tz: Tz,
    base_url: &Url,
    source: &str,
) -> Result<ImportReport, ImportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ImportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut report = ImportReport::default();
    // What the directory holds: (local date, title) of every readable post.
    let (posts, _) = local::read_dir(dir, source, base_url, tz);
    let mut held: HashSet<(NaiveDate, String)> = posts
        .iter()
        .filter_map(|p| {
            let title = p.entry.title.as_ref()?.body.clone();
            let day = p.entry.published?.with_timezone(&tz).date_naive();
            Some((day, crate::normalise::text::collapse_whitespace(&title)))
        })
        .collect();
    // Posts that keep pointing at an original (`link`): the same original is the same
    // item, even when the partner has retitled it since.
    let own_page = |slug: &str| local::post_url(base_url, source, slug).to_string();
    let mut held_links: HashSet<String> = posts
        .iter()
        .filter_map(|p| p.entry.link.clone().filter(|l| *l != own_page(&p.slug)))
        .collect();
    let progress = crate::progress::Posts::begin(drafts.len());
    for d in drafts {
        progress.handled();
        if let Some(l) = d.link.as_ref().filter(|l| held_links.contains(l.as_str())) {
            report.existing.push((
                dir.join(format!("{}.md", file_stem(&d.title, d.published, tz))),
                format!("a post with link {l} exists"),
            ));
            continue;
        }
        let day = d.published.with_timezone(&tz).date_naive();
        let stem = file_stem(&d.title, d.published, tz);
        let key = (day, crate::normalise::text::collapse_whitespace(&d.title));
        let mut path = dir.join(format!("{stem}.md"));
        if held.contains(&key) {
            report
                .existing
                .push((path, "a post with this date and title exists".into()));
            continue;
        }
        // Another post took this name (a different title slugged alike): number it.
        let mut n = 2;
        while path.exists() {
            path = dir.join(format!("{stem}-{n}.md"));
            n += 1;
        }
        let text = render_post(d, tz);
        if let Err(e) = local::parse_post(&text, &path, source, base_url, tz) {
            report.problems.push(format!(
                "{}: would not read back ({e}); not written",
                d.origin
            ));
            continue;
        }
        let mut tmp = crate::publish::readable_temp_file(dir, ".tmp").map_err(io(dir))?;
        tmp.write_all(text.as_bytes()).map_err(io(&path))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => {
                held.insert(key);
                if let Some(l) = &d.link {
                    held_links.insert(l.to_string());
                }
                report.written.push(path);
            }
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                report
                    .existing
                    .push((path, "the file appeared meanwhile".into()));
            }
            Err(e) => return Err(io(&path)(e.error)),
        }
    }
    Ok(report)
}

/// Midnight of a local date in `tz`, in UTC.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    crate::dates::local_to_utc(date.and_time(NaiveTime::MIN), tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn listing_dates_titles_and_paragraphs() {
        let text = "Aktuelles\n\n09.10.2017\n\n15. DEFUS Mitgliederversammlung\n\nErster Absatz. \n\nZweiter * Absatz:\n\n  • Eins\n  • Zwei\n\n\u{a0}\n\n16.08.2017\n\nNeu\n\nText\n";
        let (d, problems) = read_text_listing(text, BERLIN, "a.txt");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].title, "15. DEFUS Mitgliederversammlung");
        assert_eq!(d[0].published.to_rfc3339(), "2017-10-08T22:00:00+00:00");
        assert_eq!(
            d[0].body,
            "Erster Absatz.\n\nZweiter \\* Absatz:\n\n- Eins\n- Zwei"
        );
        assert_eq!(d[0].origin, "a.txt:3");
        assert_eq!(d[1].body, "Text");
    }

    #[test]
    fn file_names_spell_out_german_letters() {
        let t = local_midnight(NaiveDate::from_ymd_opt(2017, 8, 16).unwrap(), BERLIN);
        assert_eq!(
            file_stem(
                "DEFUS begrüßt 2 neue Mitglieder - Gelsenkirchen und Lippe",
                t,
                BERLIN
            ),
            "2017-08-16-defus-begruesst-2-neue-mitglieder-gelsenkirchen-und-lippe"
        );
    }

    #[test]
    fn markdown_line_starts_stay_text() {
        assert_eq!(escape_markdown("15. Treffen"), "15\\. Treffen");
        assert_eq!(escape_markdown("- nicht"), "\\- nicht");
        assert_eq!(escape_markdown("a_b"), "a\\_b");
    }

    #[test]
    fn posts_round_trip_through_the_local_reader() {
        let d = Draft {
            title: "Zitat: \"Sicherheit\" & mehr".into(),
            published: "2017-10-09T12:30:00Z".parse().unwrap(),
            updated: None,
            body: "Text".into(),
            summary: None,
            tags: vec!["Prävention".into()],
            authors: vec![],
            language: Some("de".into()),
            link: None,
            origin: "t".into(),
        };
        let text = render_post(&d, BERLIN);
        assert!(
            text.contains("date = 2017-10-09T14:30:00+02:00\n"),
            "{text}"
        );
        let base = Url::parse("https://example.org/").unwrap();
        let p = local::parse_post(&text, Path::new("x.md"), "defus", &base, BERLIN).unwrap();
        assert_eq!(p.entry.title.unwrap().body, d.title);
        assert_eq!(p.entry.published, Some(d.published));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the title and body, the post written reads back with the same title
        /// and date, and the listing reader never panics.
        #[test]
        fn any_post_reads_back(title in "[^\u{0}]{1,80}", body in "[^\u{0}]{0,300}", mins in 0i64..(60 * 24 * 365 * 30)) {
            prop_assume!(!title.trim().is_empty());
            let published = DateTime::<Utc>::from_timestamp(1_000_000_000 + mins * 60, 0).unwrap();
            let d = Draft {
                title: title.clone(),
                published,
                updated: None,
                body: body.clone(),
                summary: None,
                tags: vec![],
                authors: vec![],
                language: None,
                link: None,
                origin: "p".into(),
            };
            let berlin = chrono_tz::Europe::Berlin;
            let text = render_post(&d, berlin);
            let base = Url::parse("https://example.org/").unwrap();
            let p = local::parse_post(&text, Path::new("x.md"), "s", &base, berlin).unwrap();
            prop_assert_eq!(p.entry.title.unwrap().body, title);
            prop_assert_eq!(p.entry.published, Some(published));
            let _ = read_text_listing(&body, berlin, "p");
        }
    }
}
