//! The sanitiser policy (ammonia) for everything we republish, and HTML → plain text.
//!
//! Sanitising happens here, once, after parsing: feed-rs's own `sanitize` feature stays
//! off, and local Markdown goes through the same policy (pulldown-cmark passes raw HTML).

use std::collections::HashSet;

use ammonia::{Builder, UrlRelative};
use url::Url;

/// Sanitises `html` for embedding in partner pages: allow-list of news markup, absolute
/// URLs against `base`, `rel="noopener noreferrer"` on links. `iframe`s survive only when
/// their `src` host is in `allow_iframe_hosts`.
pub fn sanitise(html: &str, base: Option<&Url>, allow_iframe_hosts: &[String]) -> String {
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
        .generic_attributes(["lang", "title"].into_iter().collect())
        .add_tag_attributes("a", ["href", "hreflang"])
        .add_tag_attributes("img", ["src", "alt", "width", "height"])
        .add_tag_attributes("td", ["colspan", "rowspan"])
        .add_tag_attributes("th", ["colspan", "rowspan", "scope"])
        .add_tag_attributes("time", ["datetime"])
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"));
    if !allow_iframe_hosts.is_empty() {
        b.add_tags(["iframe"])
            .add_tag_attributes("iframe", ["src", "width", "height", "allowfullscreen"]);
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
            let ok = Url::parse(value).ok().is_some_and(|u| {
                u.scheme() == "https" && u.host_str().is_some_and(|h| hosts.iter().any(|a| a == h))
            });
            return ok.then(|| value.into());
        }
        Some(value.into())
    });
    b.clean(html).to_string()
}

/// HTML → plain text: tags dropped, entities decoded, whitespace collapsed.
pub fn to_text(html: &str) -> String {
    let frag = scraper::Html::parse_fragment(html);
    let mut out = String::with_capacity(html.len());
    for node in frag.root_element().descendants() {
        if let Some(t) = node.value().as_text() {
            out.push_str(t);
        } else if let Some(e) = node.value().as_element() {
            if matches!(
                e.name(),
                "p" | "br" | "li" | "h1" | "h2" | "h3" | "h4" | "div" | "tr"
            ) {
                out.push(' ');
            }
        }
    }
    super::text::collapse_whitespace(&out)
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
