//! The sanitiser policy (ammonia) for everything we republish, and HTML → plain text.
//!
//! Sanitising happens here, once, after parsing: feed-rs's own `sanitize` feature stays
//! off, and local Markdown goes through the same policy (pulldown-cmark passes raw HTML).

use std::collections::HashSet;

use ammonia::{Builder, UrlRelative};
use url::Url;

/// Sanitises `html` for embedding in partner pages.
///
/// The policy, and why:
/// - An allow-list of news markup: paragraphs, headings, lists, emphasis, links, images,
///   figures, quotes, code, simple tables. Everything else is dropped with its
///   attributes; the text inside survives, except in `script` and `style`, whose content
///   goes too. So `<svg>`, `<math>`, `<form>`, `<object>`, `<embed>`, `<base>`, `<meta>`,
///   `<link>` and `<iframe>` (unless allowed below) never reach the output.
/// - Attributes are allow-listed per tag; no `style`, `class`, `id` (DOM clobbering),
///   `srcset`, `srcdoc` or event handler ever survives.
/// - URL schemes: `http`, `https`, `mailto`. Not `data:`, not even for images: a data
///   URL can be megabytes of base64 in every copy of every feed, some readers open
///   images as top-level documents (where `data:image/svg+xml` runs script), and the
///   scheme filter cannot tell `data:image/png` from `data:text/html`. Partners who
///   inline images lose them; the text stays.
/// - Relative URLs are made absolute against `base`; without a base they are dropped,
///   since they would point into our site, not the partner's.
/// - Every link gets `rel="noopener noreferrer"`.
/// - `<iframe>` only from the source's `allow_iframe_hosts` (exact host, `https` only;
///   protocol-relative `//host/…` is read as https), sandboxed and lazily loaded.
pub fn sanitise(html: &str, base: Option<&Url>, allow_iframe_hosts: &[String]) -> String {
    let html = super::text::strip_controls(html);
    let tags: HashSet<&str> = [
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "dd",
        "del",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "time",
        "tr",
        "u",
        "ul",
    ]
    .into_iter()
    .collect();
    let mut b = Builder::default();
    b.tags(tags)
        .generic_attributes(["lang", "title", "dir"].into_iter().collect())
        .add_tag_attributes("a", ["href", "hreflang"])
        .add_tag_attributes("img", ["src", "alt", "width", "height"])
        .add_tag_attributes("td", ["colspan", "rowspan"])
        .add_tag_attributes("th", ["colspan", "rowspan", "scope"])
        .add_tag_attributes("time", ["datetime"])
        .add_tag_attributes("q", ["cite"])
        .add_tag_attributes("blockquote", ["cite"])
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"));
    if !allow_iframe_hosts.is_empty() {
        b.add_tags(["iframe"])
            .add_tag_attributes(
                "iframe",
                ["src", "width", "height", "allowfullscreen", "title"],
            )
            .set_tag_attribute_value(
                "iframe",
                "sandbox",
                "allow-scripts allow-same-origin allow-popups allow-presentation",
            )
            .set_tag_attribute_value("iframe", "loading", "lazy");
    }
    match base {
        Some(base) => {
            b.url_relative(UrlRelative::RewriteWithBase(base.clone()));
        }
        None => {
            b.url_relative(UrlRelative::Deny);
        }
    }
    let hosts: Vec<String> = allow_iframe_hosts.to_vec();
    b.attribute_filter(move |element, attribute, value| {
        if element == "iframe" && attribute == "src" {
            return iframe_src(value, &hosts).map(Into::into);
        }
        Some(value.into())
    });
    b.clean(&html).to_string()
}

/// An embed URL on an allowed host, as https; `None` for anything else.
fn iframe_src(value: &str, hosts: &[String]) -> Option<String> {
    let value = value.trim();
    let absolute = match value.strip_prefix("//") {
        Some(rest) => format!("https://{rest}"),
        None => value.to_owned(),
    };
    let url = Url::parse(&absolute).ok()?;
    let host = url.host_str()?;
    (url.scheme() == "https" && hosts.iter().any(|h| h == host)).then(|| url.to_string())
}

/// HTML → plain text: tags dropped, entities decoded, whitespace collapsed; the content
/// of `script`, `style` and `template` is not text and goes too. Block boundaries become
/// spaces so words do not run together.
pub fn to_text(html: &str) -> String {
    use ego_tree::iter::Edge;
    let frag = scraper::Html::parse_fragment(html);
    let mut out = String::with_capacity(html.len());
    let mut hidden = 0usize;
    for edge in frag.root_element().traverse() {
        match edge {
            Edge::Open(node) => {
                if let Some(e) = node.value().as_element() {
                    if matches!(e.name(), "script" | "style" | "template") {
                        hidden += 1;
                    } else if is_block(e.name()) {
                        out.push(' ');
                    }
                } else if let Some(t) = node.value().as_text() {
                    if hidden == 0 {
                        out.push_str(t);
                    }
                }
            }
            Edge::Close(node) => {
                if let Some(e) = node.value().as_element() {
                    if matches!(e.name(), "script" | "style" | "template") {
                        hidden -= 1;
                    } else if is_block(e.name()) {
                        out.push(' ');
                    }
                }
            }
        }
    }
    super::text::collapse_whitespace(&out)
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "br"
            | "li"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "div"
            | "tr"
            | "td"
            | "th"
            | "dt"
            | "dd"
            | "blockquote"
            | "figcaption"
            | "figure"
            | "pre"
            | "hr"
            | "table"
            | "ul"
            | "ol"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "img"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_and_javascript_urls_are_removed() {
        let out = sanitise(
            r#"<p onclick="x()">Hi<script>alert(1)</script><a href="javascript:alert(1)">x</a></p>"#,
            None,
            &[],
        );
        assert!(!out.contains("script"), "{out}");
        assert!(!out.contains("onclick"), "{out}");
        assert!(!out.contains("javascript"), "{out}");
    }

    #[test]
    fn relative_urls_become_absolute_and_links_get_rel() {
        let base = Url::parse("https://partner.example/news/item").unwrap();
        let out = sanitise(r#"<a href="/x">x</a><img src="i.png">"#, Some(&base), &[]);
        assert!(out.contains(r#"href="https://partner.example/x""#), "{out}");
        assert!(
            out.contains(r#"src="https://partner.example/news/i.png""#),
            "{out}"
        );
        assert!(out.contains(r#"rel="noopener noreferrer""#), "{out}");
    }
}
