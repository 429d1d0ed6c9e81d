//! The news list partner sites embed: `<li>` entries rendered once per publish (the
//! server only picks the first N), and the small HTML document `/embed` answers with,
//! made to sit in an iframe. `embed.js` (see `assets`) builds the same markup with DOM
//! calls from the channel's JSON Feed.

use chrono_tz::Tz;

use super::{escape, FeedDoc};

/// The most items `/embed?n=` may ask for.
pub const MAX_ITEMS: usize = 50;

/// One `<li>` per item, newest first, at most [`MAX_ITEMS`]: title link, date, source.
/// Only plain text and absolute http(s) URLs go in, all escaped.
pub fn list_items(doc: &FeedDoc, tz: Tz) -> Vec<String> {
    doc.items
        .iter()
        .take(MAX_ITEMS)
        .map(|s| {
            let it = &s.item;
            let title = escape(&it.title);
            let heading = match it.url.as_ref().filter(|u| matches!(u.scheme(), "http" | "https")) {
                Some(u) => format!("<a href=\"{}\" rel=\"noopener\">{title}</a>", escape(u.as_str())),
                None => title,
            };
            let local = it.published.with_timezone(&tz);
            format!(
                "<li>{heading} <span class=\"feedwerk-meta\"><time datetime=\"{}\">{}</time> · {}</span></li>",
                it.published.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                local.format("%d.%m.%Y"),
                escape(doc.source_title(&it.source))
            )
        })
        .collect()
}

const STYLE: &str = "body{margin:0;font-family:system-ui,sans-serif;font-size:1rem;line-height:1.4;color:#1b1b1b;background:transparent}\
.feedwerk-embed{list-style:none;margin:0;padding:0}.feedwerk-embed li{padding:.4rem 0;border-bottom:1px solid #ddd}\
.feedwerk-embed a{color:#0645ad;font-weight:600}.feedwerk-meta{display:block;color:#555;font-size:.85rem}";

/// The `/embed` document: a complete, minimal HTML page (links open outside the frame).
pub fn page(title: &str, language: &str, items: &[String]) -> String {
    let mut h = String::with_capacity(512 + items.iter().map(String::len).sum::<usize>());
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<base target=\"_blank\">\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <ul class=\"feedwerk-embed\" aria-label=\"{}\">\n",
        escape(language),
        escape(title),
        escape(title)
    ));
    if items.is_empty() {
        h.push_str("<li>Noch keine Meldungen.</li>\n");
    }
    for li in items {
        h.push_str(li);
        h.push('\n');
    }
    h.push_str("</ul>\n</body>\n</html>\n");
    h
}
