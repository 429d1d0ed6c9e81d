//! HTML for people: the news page at `/` and one page per local post (the link target
//! of local items). German UI text; all item HTML is already sanitised.

use chrono_tz::Tz;

use super::{escape, FeedDoc};
use crate::model::{Channel, ChannelKind, Format};
use crate::store::StoredItem;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:44rem;margin:0 auto;padding:1rem;line-height:1.5;color:#1b1b1b}\
a{color:#0645ad}article{border-bottom:1px solid #ddd;padding:.5rem 0 1rem}\
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-bottom:.2rem}.meta{color:#555;font-size:.9rem}\
img{max-width:100%;height:auto}.also{font-size:.9rem;color:#444}\
nav{font-size:.9rem}nav h2{font-size:1rem}\
@media (prefers-color-scheme:dark){body{background:#121212;color:#e8e8e8}a{color:#8ab4f8}.meta,.also{color:#bbb}article{border-color:#333}}";

fn date_de(it: &StoredItem, tz: Tz) -> (String, String) {
    let local = it.item.published.with_timezone(&tz);
    (
        local.format("%d.%m.%Y").to_string(),
        it.item.published.to_rfc3339(),
    )
}

/// The news page: every item of the combined channel, with autodiscovery links for
/// every format and a list of all channels (`channels`) to subscribe to.
pub fn index(doc: &FeedDoc, channels: &[Channel]) -> Vec<u8> {
    let mut h = String::with_capacity(8192);
    let lang = escape(&doc.site.language);
    let title = escape(&doc.channel.title);
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n"
    ));
    for (f, t) in [
        (Format::Rss, "application/rss+xml"),
        (Format::Atom, "application/atom+xml"),
        (Format::Json, "application/feed+json"),
    ] {
        h.push_str(&format!(
            "<link rel=\"alternate\" type=\"{t}\" title=\"{title} ({})\" href=\"{}\">\n",
            f.extension().to_uppercase(),
            escape(doc.self_url(f).as_str())
        ));
    }
    h.push_str(&format!(
        "<link rel=\"alternate\" type=\"text/x-opml\" title=\"Quellen (OPML)\" href=\"{}\">\n",
        escape(
            doc.site
                .base_url
                .join("sources.opml")
                .expect("relative")
                .as_str()
        )
    ));
    h.push_str(&format!(
        "<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n"
    ));
    h.push_str(&format!(
        "<p class=\"meta\">Abonnieren: <a href=\"{}\">RSS</a> · <a href=\"{}\">Atom</a> · <a href=\"{}\">JSON Feed</a></p>\n",
        escape(doc.self_url(Format::Rss).as_str()),
        escape(doc.self_url(Format::Atom).as_str()),
        escape(doc.self_url(Format::Json).as_str())
    ));
    let mut nav = String::new();
    if channels.len() > 1 {
        nav.push_str(
            "<nav aria-labelledby=\"feeds\">\n<h2 id=\"feeds\">Weitere Feeds: nach Quelle, Thema und Sprache</h2>\n<ul>\n",
        );
        for ch in channels.iter().filter(|c| c.kind != ChannelKind::Combined) {
            let url = |f: Format| {
                escape(
                    doc.site
                        .base_url
                        .join(&ch.path(f))
                        .expect("relative")
                        .as_str(),
                )
            };
            nav.push_str(&format!(
                "<li>{}: <a href=\"{}\">RSS</a> · <a href=\"{}\">Atom</a> · <a href=\"{}\">JSON Feed</a></li>\n",
                escape(&ch.title),
                url(Format::Rss),
                url(Format::Atom),
                url(Format::Json)
            ));
        }
        nav.push_str(&format!(
            "<li>Alle Quellen als <a href=\"{}\">OPML-Liste</a></li>\n</ul>\n</nav>\n",
            escape(
                doc.site
                    .base_url
                    .join("sources.opml")
                    .expect("relative")
                    .as_str()
            )
        ));
    }
    if doc.items.is_empty() {
        h.push_str("<p>Noch keine Meldungen.</p>\n");
    }
    for s in doc.items {
        let (de, iso) = date_de(s, doc.site.timezone);
        let it = &s.item;
        let t = escape(&it.title);
        let heading = match &it.url {
            Some(u) => format!("<a href=\"{}\">{t}</a>", escape(u.as_str())),
            None => t,
        };
        let src = doc
            .source(&it.source)
            .map(|s| s.title.as_str())
            .unwrap_or(it.source.as_str());
        let lang_attr = it
            .language
            .as_deref()
            .map(|l| format!(" lang=\"{}\"", escape(l)))
            .unwrap_or_default();
        h.push_str(&format!(
            "<article{lang_attr}>\n<h2>{heading}</h2>\n<p class=\"meta\"><time datetime=\"{iso}\">{de}</time> · {}</p>\n<p>{}</p>\n",
            escape(src),
            escape(&it.summary)
        ));
        if !s.also_at.is_empty() {
            h.push_str(&format!(
                "<p class=\"also\">Auch erschienen bei: {}</p>\n",
                super::also_at_links(&s.also_at)
            ));
        }
        h.push_str("</article>\n");
    }
    h.push_str(&nav);
    h.push_str("</main>\n</body>\n</html>\n");
    h.into_bytes()
}

/// A local post's own page.
pub fn post(doc: &FeedDoc, s: &StoredItem) -> Vec<u8> {
    let it = &s.item;
    let (de, iso) = date_de(s, doc.site.timezone);
    let lang = escape(it.language.as_deref().unwrap_or(&doc.site.language));
    let title = escape(&it.title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title} – {site}</title>\n\
         <link rel=\"alternate\" type=\"application/atom+xml\" title=\"{site}\" href=\"{atom}\">\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <p class=\"meta\"><a href=\"{home}\">{site}</a></p>\n<article>\n<h1>{title}</h1>\n<p class=\"meta\"><time datetime=\"{iso}\">{de}</time></p>\n{content}\n</article>\n</main>\n</body>\n</html>\n",
        site = escape(&doc.site.title),
        atom = escape(doc.site.base_url.join("atom.xml").expect("static").as_str()),
        home = escape(doc.site.base_url.as_str()),
        content = it.content_html.as_deref().unwrap_or(""),
    )
    .into_bytes()
}
