//! The scraper adapter: a partner's HTML news page + CSS selectors → [`ParsedFeed`].
//! The only file that names scraper types (config validation calls [`check_selector`]).
//!
//! It owns what only a page knows: which element is an item, where its title, link, date
//! and text are, and when a page's items cannot be told apart by their links. Decoding
//! the bytes is `source::decode`'s job (`decode_html`: BOM, `<meta charset>`, HTTP
//! charset); reading date text is `dates`' job; sanitising and the ID rule are
//! `normalise`'s.
//!
//! A page whose item selector matches nothing is an error, never an empty page: a partner
//! who redesigns their site must not make the items we hold disappear.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use scraper::{ElementRef, Html, Selector};
use url::Url;

use crate::model::{Entry, PageSelectors, ParsedFeed, Text};

/// Why a page yielded no items.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The item selector found nothing: usually the partner changed their layout.
    #[error("{origin}: selector `{selector}` matched nothing")]
    NothingMatched { origin: String, selector: String },
    /// Items were found but the title selector matched inside none of them.
    #[error("{origin}: title selector `{selector}` matched nothing inside any of the {items} items matched by `{item}`")]
    NoTitles {
        origin: String,
        selector: String,
        item: String,
        items: usize,
    },
    #[error("{origin}: invalid CSS selector `{selector}` ({field}): {message}")]
    InvalidSelector {
        origin: String,
        field: &'static str,
        selector: String,
        message: String,
    },
}

/// What a page source needs besides its HTML.
#[derive(Debug, Clone)]
pub struct PageRules<'a> {
    pub selectors: &'a PageSelectors,
    /// chrono formats tried before the general date rules.
    pub date_formats: &'a [String],
    /// Zone for dates written without one (the page's local time).
    pub timezone: Tz,
}

/// Checks one selector, for `feedwerk check` and argument parsing.
pub fn check_selector(selector: &str) -> Result<(), String> {
    if selector.trim().is_empty() {
        return Err("empty selector".into());
    }
    Selector::parse(selector)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks a date format: chrono must accept it, and a date written with it must read
/// back, so `"%H:%M"` (no date in it) or `"Datum"` (no fields) are refused up front.
pub fn check_date_format(fmt: &str) -> Result<(), String> {
    use std::fmt::Write as _;
    crate::dates::validate_format(fmt)?;
    let sample: DateTime<Utc> = "2017-10-09T12:30:00Z".parse().expect("static date");
    let mut written = String::new();
    if write!(written, "{}", sample.format(fmt)).is_err() {
        return Err(format!("invalid date format `{fmt}`"));
    }
    if crate::dates::parse_with_formats(&written, &[fmt.to_owned()], chrono_tz::UTC).is_none() {
        return Err(format!(
            "date format `{fmt}` cannot identify a day (a date written with it, `{written}`, does not read back)"
        ));
    }
    Ok(())
}

/// Parses selectors given as `item=.newsitem,title=h3 a,link=h3 a,date=.date` (the
/// `--selectors` argument of `import` and `doctor`). Commas inside a selector are
/// allowed after the first `key=`: a part without `=` continues the previous value.
pub fn parse_selector_spec(spec: &str) -> Result<PageSelectors, String> {
    let spec = spec.trim();
    if spec.starts_with('{') {
        // A TOML inline table, exactly as in config.toml.
        #[derive(serde::Deserialize)]
        struct Wrap {
            s: PageSelectors,
        }
        let w: Wrap = toml::from_str(&format!("s = {spec}"))
            .map_err(|e| format!("--selectors: {}", e.message()))?;
        return check_all(w.s);
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in spec.split(',') {
        match part.split_once('=') {
            Some((k, v))
                if matches!(
                    k.trim(),
                    "item" | "title" | "link" | "date" | "summary" | "content"
                ) =>
            {
                pairs.push((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => match pairs.last_mut() {
                // `h2, h3` inside a value: the comma belongs to the selector.
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(part);
                }
                None => {
                    return Err(format!(
                        "--selectors: expected `item=…,title=…[,link=…][,date=…][,summary=…][,content=…]`, got `{part}`"
                    ))
                }
            },
        }
    }
    let mut sel = PageSelectors::default();
    for (k, v) in pairs {
        let v = v.trim().to_owned();
        match k.as_str() {
            "item" => sel.item = v,
            "title" => sel.title = v,
            "link" => sel.link = Some(v),
            "date" => sel.date = Some(v),
            "summary" => sel.summary = Some(v),
            _ => sel.content = Some(v),
        }
    }
    if sel.item.is_empty() || sel.title.is_empty() {
        return Err("--selectors: `item` and `title` are required".into());
    }
    check_all(sel)
}

fn check_all(sel: PageSelectors) -> Result<PageSelectors, String> {
    for (field, v) in fields(&sel) {
        check_selector(v).map_err(|e| format!("invalid CSS selector `{v}` ({field}): {e}"))?;
    }
    Ok(sel)
}

/// Every selector that is set, with its field name.
pub fn fields(sel: &PageSelectors) -> Vec<(&'static str, &str)> {
    let mut out = vec![("item", sel.item.as_str()), ("title", sel.title.as_str())];
    for (name, v) in [
        ("link", &sel.link),
        ("date", &sel.date),
        ("summary", &sel.summary),
        ("content", &sel.content),
    ] {
        if let Some(v) = v {
            out.push((name, v.as_str()));
        }
    }
    out
}

struct Compiled {
    item: Selector,
    title: Selector,
    link: Option<Selector>,
    date: Option<Selector>,
    summary: Option<Selector>,
    content: Option<Selector>,
}

fn compile(sel: &PageSelectors, origin: &str) -> Result<Compiled, PageError> {
    let one = |field: &'static str, v: &str| {
        Selector::parse(v).map_err(|e| PageError::InvalidSelector {
            origin: origin.to_owned(),
            field,
            selector: v.to_owned(),
            message: e.to_string(),
        })
    };
    let opt =
        |field: &'static str, v: &Option<String>| v.as_deref().map(|v| one(field, v)).transpose();
    Ok(Compiled {
        item: one("item", &sel.item)?,
        title: one("title", &sel.title)?,
        link: opt("link", &sel.link)?,
        date: opt("date", &sel.date)?,
        summary: opt("summary", &sel.summary)?,
        content: opt("content", &sel.content)?,
    })
}

/// Extracts the items of a decoded page. `base` is the page's URL after redirects: links
/// are made absolute against it (or against `<base href>` when the page has one).
pub fn parse(
    html: &str,
    base: &Url,
    rules: &PageRules,
    origin: &str,
) -> Result<ParsedFeed, PageError> {
    let sel = compile(rules.selectors, origin)?;
    let doc = Html::parse_document(html);
    let base = document_base(&doc, base);
    let items: Vec<ElementRef> = doc.select(&sel.item).collect();
    if items.is_empty() {
        return Err(PageError::NothingMatched {
            origin: origin.to_owned(),
            selector: rules.selectors.item.clone(),
        });
    }
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for (i, el) in items.iter().enumerate() {
        let at = format!("{origin}#item{}", i + 1);
        let Some(title) = el.select(&sel.title).map(text_of).find(|t| !t.is_empty()) else {
            problems.push(format!(
                "{at}: title selector `{}` matched nothing; item skipped",
                rules.selectors.title
            ));
            continue;
        };
        let link = match &sel.link {
            Some(s) => el.select(s).find_map(href_of),
            // Without a link selector, a link on the title is the natural one.
            None => el.select(&sel.title).find_map(href_of),
        };
        let link = link.and_then(|href| crate::normalise::url::resolve(&href, Some(&base)));
        if sel.link.is_some() && link.is_none() {
            problems.push(format!(
                "{at}: link selector `{}` found no usable link",
                rules.selectors.link.as_deref().unwrap_or_default()
            ));
        }
        let date_text = sel
            .date
            .as_ref()
            .and_then(|s| el.select(s).map(date_text_of).find(|t| !t.is_empty()));
        let published = date_text
            .as_deref()
            .and_then(|t| read_date(t, rules.date_formats, rules.timezone));
        match (&sel.date, &date_text, published) {
            (Some(_), Some(t), None) => problems.push(format!(
                "{at}: cannot read date `{t}`{}",
                if rules.date_formats.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", rules.date_formats.join(", "))
                }
            )),
            (Some(_), None, _) => problems.push(format!(
                "{at}: date selector `{}` matched nothing",
                rules.selectors.date.as_deref().unwrap_or_default()
            )),
            _ => {}
        }
        let summary = sel
            .summary
            .as_ref()
            .and_then(|s| el.select(s).next())
            .map(|e| Text::html(inner_html_absolute(e, &base)));
        let content = sel
            .content
            .as_ref()
            .and_then(|s| el.select(s).next())
            .map(|e| Text::html(inner_html_absolute(e, &base)));
        entries.push((
            Entry {
                guid: None,
                link: link.map(|u| u.to_string()),
                title: Some(Text::plain(title)),
                summary,
                content,
                published,
                base: Some(base.clone()),
                origin: at,
                ..Entry::default()
            },
            date_text,
        ));
    }
    if entries.is_empty() {
        return Err(PageError::NoTitles {
            origin: origin.to_owned(),
            selector: rules.selectors.title.clone(),
            item: rules.selectors.item.clone(),
            items: items.len(),
        });
    }
    let entries = assign_keys(entries, &base, &mut problems);
    Ok(ParsedFeed {
        format: "page".into(),
        title: doc
            .select(&Selector::parse("title").expect("static selector"))
            .next()
            .map(|t| crate::normalise::text::plain_title(&Text::plain(text_of(t))))
            .filter(|t| !t.is_empty()),
        link: Some(base.clone()),
        id: None,
        updated: None,
        ttl_minutes: None,
        language: doc
            .root_element()
            .attr("lang")
            .map(str::to_owned)
            .filter(|l| !l.trim().is_empty()),
        entries,
        problems,
        ..ParsedFeed::default()
    })
}

/// Reads a date from an element's text. Pages often wrap it in words ("Veröffentlicht
/// am 09.10.2017 | Pressestelle"), so when the whole text does not read as a date, runs
/// of its words are tried, longest first; the date rules are strict enough ("2017", "3"
/// or "vom 09.10.2017" alone are not dates) that this does not invent dates.
fn read_date(text: &str, formats: &[String], tz: Tz) -> Option<DateTime<Utc>> {
    if let Some(d) = crate::dates::parse_with_formats(text, formats, tz) {
        return Some(d);
    }
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '|')
        .map(|w| w.trim_matches([',', ';', '(', ')', '[', ']']))
        .filter(|w| !w.is_empty())
        .take(24)
        .collect();
    for len in (1..=words.len().min(8)).rev() {
        for window in words.windows(len) {
            if !window.iter().any(|w| w.bytes().any(|b| b.is_ascii_digit())) {
                continue;
            }
            let candidate = window.join(" ");
            if let Some(d) = crate::dates::parse_with_formats(&candidate, formats, tz) {
                return Some(d);
            }
        }
    }
    None
}

/// Decides which items need a key of their own. The ID rule (`normalise::item_id`) uses
/// the canonical link when there is one; but on a page, a link may not identify an item:
/// it may be missing, point back at the page itself (`#top`, `?page=1`), or be shared by
/// several items ("mehr …" to one overview). Those items get a stable key made from
/// their title and the date *as written*, so the key does not depend on the time we
/// first saw an undated item.
fn assign_keys(
    entries: Vec<(Entry, Option<String>)>,
    page: &Url,
    problems: &mut Vec<String>,
) -> Vec<Entry> {
    let without_fragment = |u: &str| u.split('#').next().unwrap_or(u).to_owned();
    let page_key = without_fragment(page.as_str());
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (e, _) in &entries {
        if let Some(l) = &e.link {
            *uses.entry(without_fragment(l)).or_default() += 1;
        }
    }
    let mut seen_keys: HashMap<String, String> = HashMap::new();
    entries
        .into_iter()
        .map(|(mut e, date_text)| {
            let own_link = e.link.as_deref().map(without_fragment).filter(|l| {
                *l != page_key && uses.get(l).copied().unwrap_or(0) == 1
            });
            if own_link.is_none() {
                let title = e.title.as_ref().map(|t| t.body.as_str()).unwrap_or("");
                let key = title_date_key(title, date_text.as_deref());
                if let Some(first) = seen_keys.insert(key.clone(), e.origin.clone()) {
                    problems.push(format!(
                        "{}: same title and date as {first} and no link of its own; both count as one item",
                        e.origin
                    ));
                }
                e.stable_key = Some(key);
            }
            e
        })
        .collect()
}

/// `page-` and 20 hex digits of blake3 over the title and the date text.
pub fn title_date_key(title: &str, date_text: Option<&str>) -> String {
    let title = crate::normalise::text::collapse_whitespace(title);
    let date = date_text
        .map(crate::normalise::text::collapse_whitespace)
        .unwrap_or_default();
    let hash = blake3::hash(format!("{title}\u{0}{date}").as_bytes()).to_hex();
    format!("page-{}", &hash[..20])
}

/// `<base href>` if the page sets one, else the URL it came from.
fn document_base(doc: &Html, url: &Url) -> Url {
    let sel = Selector::parse("base[href]").expect("static selector");
    doc.select(&sel)
        .next()
        .and_then(|b| b.attr("href"))
        .and_then(|h| url.join(h.trim()).ok())
        .unwrap_or_else(|| url.clone())
}

/// Visible text, whitespace collapsed.
fn text_of(el: ElementRef) -> String {
    crate::normalise::text::collapse_whitespace(&el.text().collect::<String>())
}

/// A date's text: a machine-readable attribute (`<time datetime>`, `content`) wins
/// over what is shown.
fn date_text_of(el: ElementRef) -> String {
    el.attr("datetime")
        .or_else(|| el.attr("content"))
        .map(crate::normalise::text::collapse_whitespace)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| text_of(el))
}

/// The element's inner HTML with `href`/`src` made absolute against the *page*. The
/// page's text was written relative to the page, not to the item's link, which is what
/// `normalise` would otherwise resolve against. Sanitising stays `normalise`'s job; this
/// only re-serialises faithfully.
fn inner_html_absolute(el: ElementRef, base: &Url) -> String {
    use scraper::Node;
    fn escape(s: &str, attr: bool) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' if !attr => out.push_str("&lt;"),
                '>' if !attr => out.push_str("&gt;"),
                '"' if attr => out.push_str("&quot;"),
                '\u{a0}' => out.push_str("&nbsp;"),
                c => out.push(c),
            }
        }
        out
    }
    fn walk(node: ElementRef, base: &Url, out: &mut String) {
        for child in node.children() {
            match child.value() {
                Node::Text(t) => out.push_str(&escape(t, false)),
                Node::Element(e) => {
                    let Some(child) = ElementRef::wrap(child) else {
                        continue;
                    };
                    let name = e.name();
                    out.push('<');
                    out.push_str(name);
                    for (k, v) in e.attrs() {
                        let v = if matches!(k, "href" | "src" | "poster" | "cite" | "action") {
                            base.join(v.trim())
                                .map(|u| u.to_string())
                                .unwrap_or_else(|_| v.to_owned())
                        } else {
                            v.to_owned()
                        };
                        out.push_str(&format!(" {k}=\"{}\"", escape(&v, true)));
                    }
                    out.push('>');
                    let void = matches!(
                        name,
                        "area"
                            | "br"
                            | "col"
                            | "embed"
                            | "hr"
                            | "img"
                            | "input"
                            | "link"
                            | "meta"
                            | "source"
                            | "track"
                            | "wbr"
                    );
                    if !void {
                        walk(child, base, out);
                        out.push_str(&format!("</{name}>"));
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = String::new();
    walk(el, base, &mut out);
    out
}

/// The element's own `href`, else the first link inside it.
fn href_of(el: ElementRef) -> Option<String> {
    if let Some(h) = el.attr("href") {
        return Some(h.to_owned());
    }
    let a = Selector::parse("a[href]").expect("static selector");
    el.select(&a)
        .find_map(|a| a.attr("href"))
        .map(str::to_owned)
}

/// Feeds a page announces (`<link rel="alternate" type="application/rss+xml">`), so
/// `doctor` can point an operator at a real feed before they write selectors.
pub fn discover_feeds(html: &str, base: &Url) -> Vec<Url> {
    let doc = Html::parse_document(html);
    let sel = Selector::parse(r#"link[rel~="alternate"][href]"#).expect("static selector");
    doc.select(&sel)
        .filter(|l| {
            l.attr("type").is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.contains("rss") || t.contains("atom") || t.contains("feed+json")
            })
        })
        .filter_map(|l| base.join(l.attr("href")?.trim()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(item: &str, title: &str, link: Option<&str>, date: Option<&str>) -> PageSelectors {
        PageSelectors {
            item: item.into(),
            title: title.into(),
            link: link.map(Into::into),
            date: date.map(Into::into),
            ..PageSelectors::default()
        }
    }

    fn run(html: &str, s: &PageSelectors, formats: &[String]) -> Result<ParsedFeed, PageError> {
        let rules = PageRules {
            selectors: s,
            date_formats: formats,
            timezone: chrono_tz::Europe::Berlin,
        };
        parse(
            html,
            &Url::parse("https://partner.example/news/index.html").unwrap(),
            &rules,
            "test",
        )
    }

    #[test]
    fn items_get_absolute_links_and_berlin_midnight_dates() {
        let html = r#"<html lang="de"><body>
            <div class="newsitem"><h3><a href="/news/1.html">Eins</a></h3><span class="date">09.10.2017</span></div>
            <div class="newsitem"><h3><a href="2.html">Zwei</a></h3><span class="date">16.08.2017</span></div>
        </body></html>"#;
        let s = sel(".newsitem", "h3 a", Some("h3 a"), Some(".date"));
        let p = run(html, &s, &["%d.%m.%Y".into()]).unwrap();
        assert_eq!(p.entries.len(), 2);
        assert_eq!(
            p.entries[0].link.as_deref(),
            Some("https://partner.example/news/1.html")
        );
        assert_eq!(
            p.entries[1].link.as_deref(),
            Some("https://partner.example/news/2.html")
        );
        assert_eq!(
            p.entries[0].published.unwrap().to_rfc3339(),
            "2017-10-08T22:00:00+00:00"
        );
        assert_eq!(p.language.as_deref(), Some("de"));
        assert!(p.entries.iter().all(|e| e.stable_key.is_none()));
    }

    #[test]
    fn nothing_matched_is_an_error_naming_the_selector() {
        let e = run("<p>neu</p>", &sel(".newsitem", "h3", None, None), &[]).unwrap_err();
        assert_eq!(e.to_string(), "test: selector `.newsitem` matched nothing");
    }

    #[test]
    fn items_without_any_title_are_an_error_not_an_empty_page() {
        let e = run(
            "<div class=n><h2>A</h2></div><div class=n><h2>B</h2></div>",
            &sel(".n", "h3 a", None, None),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "test: title selector `h3 a` matched nothing inside any of the 2 items matched by `.n`"
        );
    }

    #[test]
    fn items_without_own_links_are_keyed_by_title_and_date_text() {
        let html = r##"<div class="n"><h3>A</h3><a href="#top">top</a><i>1.1.2020</i></div>
            <div class="n"><h3>B</h3><a href="/more">mehr</a><i>2.1.2020</i></div>
            <div class="n"><h3>C</h3><a href="/more">mehr</a><i>3.1.2020</i></div>"##;
        let s = sel(".n", "h3", Some("a"), Some("i"));
        let p = run(html, &s, &[]).unwrap();
        let keys: Vec<_> = p.entries.iter().map(|e| e.stable_key.clone()).collect();
        assert!(keys.iter().all(Option::is_some), "{keys:?}");
        assert_eq!(
            keys[0].as_deref(),
            Some(title_date_key("A", Some("1.1.2020")).as_str())
        );
        assert_ne!(keys[1], keys[2]);
    }

    #[test]
    fn unreadable_dates_and_missing_titles_are_problems_not_failures() {
        let html = r#"<div class="n"><h3>A</h3><i>irgendwann</i></div><div class="n"><i>1.1.2020</i></div>"#;
        let p = run(html, &sel(".n", "h3", None, Some("i")), &[]).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert!(p.entries[0].published.is_none());
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert!(p.problems[0].contains("cannot read date `irgendwann`"));
        assert!(p.problems[1].contains("title selector `h3` matched nothing"));
    }

    #[test]
    fn dates_are_found_inside_surrounding_words() {
        let berlin = chrono_tz::Europe::Berlin;
        let f = ["%d.%m.%Y".to_owned()];
        let d = |t: &str| read_date(t, &f, berlin).map(|d| d.to_rfc3339());
        let midnight = Some("2017-10-08T22:00:00+00:00".to_owned());
        assert_eq!(d("Veröffentlicht am 09.10.2017 | Pressestelle"), midnight);
        assert_eq!(d("Datum: 09.10.2017"), midnight);
        assert_eq!(d("(9. Oktober 2017)"), midnight);
        assert_eq!(
            d("am 09.10.2017, 14:30 Uhr").as_deref(),
            Some("2017-10-09T12:30:00+00:00")
        );
        assert_eq!(d("Meldung 3 von 2017"), None);
    }

    #[test]
    fn time_datetime_attribute_wins_over_shown_text() {
        let html = r#"<article><h2>A</h2><time datetime="2017-10-09T14:30:00+02:00">gestern</time></article>"#;
        let p = run(html, &sel("article", "h2", None, Some("time")), &[]).unwrap();
        assert_eq!(
            p.entries[0].published.unwrap().to_rfc3339(),
            "2017-10-09T12:30:00+00:00"
        );
    }

    #[test]
    fn selector_spec_forms() {
        let s = parse_selector_spec("item=.newsitem,title=h3 a,link=h3 a,date=.date").unwrap();
        assert_eq!(s, sel(".newsitem", "h3 a", Some("h3 a"), Some(".date")));
        let s = parse_selector_spec("item=.a, .b,title=h2, h3").unwrap();
        assert_eq!(s.item, ".a, .b");
        assert_eq!(s.title, "h2, h3");
        let s =
            parse_selector_spec(r#"item=li[data-kind="news"],title=h2, a[rel=bookmark]"#).unwrap();
        assert_eq!(s.item, r#"li[data-kind="news"]"#);
        assert_eq!(s.title, "h2, a[rel=bookmark]");
        let s =
            parse_selector_spec(r#"{ item = ".n", title = "h3", summary = ".teaser" }"#).unwrap();
        assert_eq!(s.summary.as_deref(), Some(".teaser"));
        assert!(parse_selector_spec("title=h3").is_err());
        let e = parse_selector_spec("item=div[,title=h3").unwrap_err();
        assert!(e.contains("invalid CSS selector `div[`"), "{e}");
    }

    #[test]
    fn date_formats_must_identify_a_day() {
        assert!(check_date_format("%d.%m.%Y").is_ok());
        assert!(check_date_format("%d.%m.%Y %H:%M").is_ok());
        assert!(check_date_format("%H:%M").is_err());
        assert!(check_date_format("%Q").is_err());
    }

    #[test]
    fn announced_feeds_are_discovered() {
        let html =
            r#"<head><link rel="alternate" type="application/rss+xml" href="/rss.xml"></head>"#;
        let u = Url::parse("https://partner.example/news/").unwrap();
        assert_eq!(
            discover_feeds(html, &u),
            vec![Url::parse("https://partner.example/rss.xml").unwrap()]
        );
    }
}
