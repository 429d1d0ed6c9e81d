//! Local posts: Markdown files with TOML front matter between `+++` lines, one per file,
//! under a source's directory. The file name (without `.md`) is the post's stable key, so
//! editing the title or body never changes its ID.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use url::Url;

use crate::model::{Entry, Text};

/// Front matter fields (Zola-like). Unknown keys are errors: a typo must not silently
/// publish a draft.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    pub title: String,
    pub date: toml::Value,
    #[serde(default)]
    pub updated: Option<toml::Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default, alias = "language")]
    pub lang: Option<String>,
    #[serde(default)]
    pub draft: bool,
    /// Publish this URL as the post's link instead of its own page.
    #[serde(default)]
    pub link: Option<String>,
}

/// A post that could not be read: the file, the line, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct PostError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// One post as read from disk.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: PathBuf,
    pub slug: String,
    pub draft: bool,
    pub entry: Entry,
    /// The Markdown body as written (for `import` round trips and post pages).
    pub markdown: String,
}

/// The URL of a local post's own page under the site.
pub fn post_url(base_url: &Url, source: &str, slug: &str) -> Url {
    base_url
        .join(&format!("posts/{source}/{slug}.html"))
        .expect("slug is a plain file name")
}

/// Reads every `*.md` under `dir` (sorted, so output order is deterministic). Broken
/// posts are returned as errors beside the good ones; they never stop the others.
pub fn read_dir(dir: &Path, source: &str, base_url: &Url, tz: Tz) -> (Vec<Post>, Vec<PostError>) {
    let mut posts = Vec::new();
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect(),
        Err(e) => {
            errors.push(PostError {
                path: dir.to_owned(),
                line: 0,
                message: format!("cannot read directory: {e}"),
            });
            return (posts, errors);
        }
    };
    files.sort();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse_post(&text, &path, source, base_url, tz) {
                Ok(p) => posts.push(p),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(PostError {
                path: path.clone(),
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    (posts, errors)
}

/// Parses one post file's text.
pub fn parse_post(
    text: &str,
    path: &Path,
    source: &str,
    base_url: &Url,
    tz: Tz,
) -> Result<Post, PostError> {
    let err = |line: usize, message: String| PostError {
        path: path.to_owned(),
        line,
        message,
    };
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "+++" {
        return Err(err(
            1,
            "expected front matter starting with a `+++` line".into(),
        ));
    }
    let mut front = String::new();
    let mut consumed = first.len();
    let mut closed = false;
    for l in lines.by_ref() {
        consumed += l.len();
        if l.trim_end() == "+++" {
            closed = true;
            break;
        }
        front.push_str(l);
    }
    if !closed {
        return Err(err(1, "front matter is not closed by a `+++` line".into()));
    }
    let body = &text[consumed..];
    let fm: FrontMatter = toml::from_str(&front).map_err(|e| {
        let line = e
            .span()
            .map(|s| front[..s.start.min(front.len())].matches('\n').count() + 2)
            .unwrap_or(1);
        err(line, format!("front matter: {}", e.message()))
    })?;
    let line_of = |key: &str| {
        front
            .lines()
            .position(|l| l.trim_start().starts_with(key))
            .map(|i| i + 2)
            .unwrap_or(1)
    };
    let date = front_matter_date(&fm.date, tz).ok_or_else(|| {
        err(
            line_of("date"),
            format!("`date`: cannot read {} as a date", fm.date),
        )
    })?;
    let updated = match &fm.updated {
        Some(v) => Some(front_matter_date(v, tz).ok_or_else(|| {
            err(
                line_of("updated"),
                format!("`updated`: cannot read {v} as a date"),
            )
        })?),
        None => None,
    };
    if fm.title.trim().is_empty() {
        return Err(err(line_of("title"), "`title` is empty".into()));
    }
    let slug = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| err(0, "file name is not valid UTF-8".into()))?
        .to_owned();
    let link = match &fm.link {
        Some(l) => Url::parse(l)
            .map_err(|e| err(line_of("link"), format!("`link`: invalid URL: {e}")))?
            .to_string(),
        None => post_url(base_url, source, &slug).to_string(),
    };
    let mut html = String::new();
    let parser = pulldown_cmark::Parser::new_ext(
        body,
        pulldown_cmark::Options::ENABLE_TABLES | pulldown_cmark::Options::ENABLE_STRIKETHROUGH,
    );
    pulldown_cmark::html::push_html(&mut html, parser);
    let entry = Entry {
        guid: None,
        link: Some(link),
        title: Some(Text::plain(fm.title)),
        summary: fm.summary.map(Text::plain),
        content: Some(Text::html(html)),
        published: Some(date),
        updated,
        authors: fm.authors,
        tags: fm.tags,
        language: fm.lang,
        base: Some(base_url.clone()),
        stable_key: Some(slug.clone()),
        origin: path.display().to_string(),
    };
    Ok(Post {
        path: path.to_owned(),
        slug,
        draft: fm.draft,
        entry,
        markdown: body.to_owned(),
    })
}

/// A TOML datetime or string → UTC. Offset given: exact. Local date-time: in `tz`.
/// Date only: midnight in `tz` (the rule for posts dated by day).
pub fn front_matter_date(v: &toml::Value, tz: Tz) -> Option<DateTime<Utc>> {
    match v {
        toml::Value::Datetime(dt) => {
            let date = dt.date.as_ref()?;
            let d = NaiveDate::from_ymd_opt(
                i32::from(date.year),
                u32::from(date.month),
                u32::from(date.day),
            )?;
            let t = match &dt.time {
                Some(t) => NaiveTime::from_hms_nano_opt(
                    u32::from(t.hour),
                    u32::from(t.minute),
                    u32::from(t.second.unwrap_or(0)),
                    t.nanosecond.unwrap_or(0),
                )?,
                None => NaiveTime::MIN,
            };
            let naive = d.and_time(t);
            match &dt.offset {
                Some(toml::value::Offset::Z) => Some(naive.and_utc()),
                Some(toml::value::Offset::Custom { minutes }) => {
                    Some((naive - chrono::Duration::minutes(i64::from(*minutes))).and_utc())
                }
                None => Some(crate::dates::local_to_utc(naive, tz)),
            }
        }
        toml::Value::String(s) => crate::dates::parse(s, tz),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.org/news/").unwrap()
    }

    #[test]
    fn date_only_means_midnight_in_berlin() {
        let p = parse_post(
            "+++\ntitle = \"T\"\ndate = 2017-10-09\n+++\nText",
            Path::new("feeds/defus/2017-10-09-t.md"),
            "defus",
            &base(),
            chrono_tz::Europe::Berlin,
        )
        .unwrap();
        assert_eq!(
            p.entry.published.unwrap().to_rfc3339(),
            "2017-10-08T22:00:00+00:00"
        );
        assert_eq!(
            p.entry.link.as_deref(),
            Some("https://example.org/news/posts/defus/2017-10-09-t.html")
        );
        assert_eq!(p.entry.stable_key.as_deref(), Some("2017-10-09-t"));
    }

    #[test]
    fn broken_front_matter_names_file_and_line() {
        let e = parse_post(
            "+++\ntitle = \"T\"\ndate = 2017-10-09\ntags = [\"a\"\n+++\nText",
            Path::new("feeds/defus/bad.md"),
            "defus",
            &base(),
            chrono_tz::Europe::Berlin,
        )
        .unwrap_err();
        assert_eq!(e.path, Path::new("feeds/defus/bad.md"));
        assert!(e.line >= 4, "{e}");
        let e = parse_post(
            "+++\ntitle = \"T\"\ndate = \"someday\"\n+++\n",
            Path::new("x.md"),
            "defus",
            &base(),
            chrono_tz::Europe::Berlin,
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }
}
