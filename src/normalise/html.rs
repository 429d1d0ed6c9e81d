//! The sanitiser policy (ammonia) for everything we republish. HTML → plain text is
//! `text::to_text`, beside the other plain-text rules.
//!
//! Sanitising happens here, once, after parsing: feed-rs's own `sanitize` feature stays
//! off, and local Markdown goes through the same policy (pulldown-cmark passes raw HTML).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

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
    let relative = match base {
        Some(base) => UrlRelative::RewriteWithBase(base.clone()),
        None => UrlRelative::Deny,
    };
    let out = POLICIES.with_borrow_mut(|p| {
        let b = p.for_hosts(allow_iframe_hosts);
        b.url_relative(relative);
        serialised(&b.clean(&html), html.len())
    });
    let out = if out.contains("<iframe") {
        drop_empty_iframes(&out)
    } else {
        out
    };
    // Again after parsing: a character reference (`&#14;`) becomes a control character
    // only now, and would make our XML output invalid (found by fuzzing).
    super::text::strip_controls(&out).into_owned()
}

/// The text of `sanitise(html, base, &[])`, as `text::to_text` reads it, without
/// sanitising when that cannot change the text: when the markup's tree is just its tags'
/// nesting and every tag is one the sanitiser keeps ([`super::flat_text`] answers), the
/// sanitiser removes no element, and its output (the same nesting, serialised) reads back
/// as the same text. Summaries need only their text, and the second sanitiser run per
/// item was a tenth of normalising it (issue 16). Control characters are dropped where
/// `sanitise` drops them: before reading, and before whitespace is collapsed.
pub fn sanitised_text(html: &str, base: Option<&Url>) -> String {
    use super::text;
    let input = text::strip_controls(html);
    match super::flat_text::text(&input, text::is_block) {
        Some(raw) => text::collapse_whitespace(&text::strip_controls(&raw)),
        None => text::to_text(&sanitise(html, base, &[])),
    }
}

/// A cleaned document as a string, serialised straight into a buffer of about its size:
/// `Document::to_string` goes through `Display`, which serialises into a growing buffer
/// of its own and copies that into the string.
fn serialised(doc: &ammonia::Document, size_hint: usize) -> String {
    // Attributes gain `rel` and absolute URLs; a little room saves the last regrowth.
    let mut buf = Vec::with_capacity(size_hint + size_hint / 8 + 64);
    doc.write_to(&mut buf)
        .expect("writing to a Vec fails only when out of memory");
    String::from_utf8(buf).expect("html5ever serialises str")
}

thread_local! {
    /// The policy, built once per thread rather than once per call: ammonia's `Builder`
    /// is a dozen hash sets and maps, and building it was 13 µs of every item's ~313 µs
    /// (issue 16). `Builder::clean` takes `&self` but the base URL differs per call and is
    /// a field of the builder, so each thread keeps its own builders and sets the base
    /// just before cleaning; nothing else of a call stays behind in them.
    static POLICIES: RefCell<Policies> = RefCell::new(Policies::new());
}

/// The sanitiser policy without iframes, and one per list of allowed iframe hosts (a
/// source's `allow_iframe_hosts`: few sources have one, and they share the rest).
struct Policies {
    plain: Builder<'static>,
    with_iframes: HashMap<Vec<String>, Builder<'static>>,
}

impl Policies {
    /// More distinct host lists than this on one thread means the lists keep changing
    /// (config reloads); the cache then starts again rather than grow.
    const MAX_IFRAME_POLICIES: usize = 64;

    fn new() -> Policies {
        Policies {
            plain: policy(&[]),
            with_iframes: HashMap::new(),
        }
    }

    fn for_hosts(&mut self, allow_iframe_hosts: &[String]) -> &mut Builder<'static> {
        if allow_iframe_hosts.is_empty() {
            return &mut self.plain;
        }
        if !self.with_iframes.contains_key(allow_iframe_hosts) {
            if self.with_iframes.len() >= Self::MAX_IFRAME_POLICIES {
                self.with_iframes.clear();
            }
            self.with_iframes
                .insert(allow_iframe_hosts.to_vec(), policy(allow_iframe_hosts));
        }
        self.with_iframes
            .get_mut(allow_iframe_hosts)
            .expect("inserted above")
    }
}

/// The policy of [`sanitise`] for one list of allowed iframe hosts, except the base URL
/// (set per call).
fn policy(allow_iframe_hosts: &[String]) -> Builder<'static> {
    let tags: HashSet<&str> = super::elements::ALLOWED.iter().copied().collect();
    // The attribute map *replaces* ammonia's defaults: those allow `cite` on
    // `blockquote`, `q`, `del` and `ins`, which ammonia does not treat as a URL, so
    // `cite="javascript:…"` would pass (found by the XSS test).
    let tag_attributes: HashMap<&str, HashSet<&str>> = [
        ("a", &["href", "hreflang"][..]),
        ("img", &["src", "alt", "width", "height"]),
        ("td", &["colspan", "rowspan"]),
        ("th", &["colspan", "rowspan", "scope"]),
        ("time", &["datetime"]),
        ("ol", &["start", "reversed"]),
    ]
    .into_iter()
    .map(|(tag, attrs)| (tag, attrs.iter().copied().collect()))
    .collect();
    let mut b = Builder::default();
    b.tags(tags)
        .generic_attributes(["lang", "title", "dir"].into_iter().collect())
        .tag_attributes(tag_attributes)
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
    let hosts: Vec<String> = allow_iframe_hosts.to_vec();
    b.attribute_filter(move |element, attribute, value| {
        if element == "iframe" && attribute == "src" {
            return iframe_src(value, &hosts).map(Into::into);
        }
        Some(value.into())
    });
    b
}

/// An allowed `<iframe>` whose `src` was refused is an empty box: remove it. (ammonia
/// filters attributes, not elements, so this is a second pass over its output, taken
/// only when iframes are allowed and present.)
fn drop_empty_iframes(html: &str) -> String {
    let mut frag = scraper::Html::parse_fragment(html);
    let empty: Vec<_> = frag
        .tree
        .nodes()
        .filter(|n| {
            n.value()
                .as_element()
                .is_some_and(|e| e.name() == "iframe" && e.attr("src").is_none())
        })
        .map(|n| n.id())
        .collect();
    for id in empty {
        if let Some(mut node) = frag.tree.get_mut(id) {
            node.detach();
        }
    }
    frag.root_element().inner_html()
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
    fn control_characters_from_character_references_are_removed() {
        let out = sanitise("<p>&#14;a&#1;b&#x7f;c</p>", None, &[]);
        assert_eq!(out, "<p>abc</p>");
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

    #[test]
    fn a_reused_policy_keeps_no_base_or_iframe_host_of_an_earlier_call() {
        let base = Url::parse("https://partner.example/news/item").unwrap();
        let html = r#"<a href="/x">x</a><iframe src="https://ok.example/e"></iframe>"#;
        let ok = ["ok.example".to_owned()];
        let with = sanitise(html, Some(&base), &ok);
        assert!(
            with.contains(r#"href="https://partner.example/x""#),
            "{with}"
        );
        assert!(with.contains(r#"src="https://ok.example/e""#), "{with}");
        let without = sanitise(html, None, &[]);
        assert!(!without.contains("href"), "{without}");
        assert!(!without.contains("iframe"), "{without}");
        let other = sanitise(html, Some(&base), &["other.example".to_owned()]);
        assert!(!other.contains("iframe"), "{other}");
        assert_eq!(sanitise(html, Some(&base), &ok), with);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that make up hostile HTML: dangerous tags, handlers, schemes in every
    /// disguise, entity tricks, broken nesting, and arbitrary text.
    fn piece() -> impl Strategy<Value = String> {
        let tags = prop::sample::select(vec![
            "script",
            "SCRIPT",
            "img",
            "a",
            "svg",
            "math",
            "iframe",
            "style",
            "p",
            "object",
            "embed",
            "form",
            "button",
            "base",
            "meta",
            "link",
            "template",
            "noscript",
            "xmp",
            "blockquote",
            "q",
            "del",
            "ins",
            "video",
            "table",
            "td",
            "animate",
            "set",
        ]);
        let attrs = prop::sample::select(vec![
            "onclick",
            "ONERROR",
            "onload",
            "href",
            "src",
            "style",
            "srcdoc",
            "cite",
            "xlink:href",
            "formaction",
            "action",
            "data",
            "poster",
            "background",
            "srcset",
            "to",
            "http-equiv",
            "content",
        ]);
        let values = prop::sample::select(vec![
            "javascript:alert(1)",
            " JaVaScRiPt:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "&#106;avascript:alert(1)",
            "&#x6A;avascript&colon;alert(1)",
            "javascript&#58;alert(1)",
            "\u{1}javascript:alert(1)",
            "vbscript:msgbox(1)",
            "data:text/html,<script>alert(1)</script>",
            "data:image/svg+xml;base64,PHN2Zz4=",
            "expression(alert(1))",
            "0;url=javascript:alert(1)",
            "https://ok.example/",
            "/relative",
            "",
        ]);
        prop_oneof![
            (tags.clone(), attrs.clone(), values.clone())
                .prop_map(|(t, a, v)| format!("<{t} {a}=\"{v}\">")),
            (tags.clone(), attrs, values).prop_map(|(t, a, v)| format!("<{t} {a}={v}>")),
            tags.clone().prop_map(|t| format!("</{t}>")),
            tags.prop_map(|t| format!("<{t}>")),
            prop::sample::select(vec![
                "<",
                ">",
                "\"",
                "'",
                "&",
                "&lt;",
                "&gt;",
                "&amp;",
                "<!--",
                "-->",
                "<![CDATA[",
                "]]>",
                "/",
                "=",
                " ",
                "alert(1)",
                "<script>alert(1)</script>",
            ])
            .prop_map(str::to_owned),
            "[^\u{0}]{0,8}",
        ]
    }

    fn hostile_html() -> impl Strategy<Value = String> {
        prop::collection::vec(piece(), 0..40).prop_map(|v| v.concat())
    }

    /// Markup of the elements the sanitiser keeps (so the shortcut of [`sanitised_text`]
    /// is taken), with attributes, references, controls and whitespace the parser or
    /// the sanitiser treat specially, nested well and badly.
    fn known_markup() -> impl Strategy<Value = String> {
        let tags = prop::sample::select(super::super::elements::ALLOWED.to_vec());
        let piece = prop_oneof![
            tags.clone().prop_map(|t| format!("<{t}>")),
            tags.clone().prop_map(|t| format!("</{t}>")),
            tags.clone()
                .prop_map(|t| format!("<{t} href=\"/x?a=1&amp;b=2\" title='t &quot;'>")),
            tags.prop_map(|t| format!("<{}>", t.to_uppercase())),
            prop::sample::select(vec![
                "wort ",
                " ",
                "\n",
                "\r\n",
                "\t",
                "&amp;",
                "&lt;b&gt;",
                "&nbsp;",
                "&#160;",
                "&#0;",
                "&#14;",
                "&#x85;",
                "&#x81;",
                "&#xfffe;",
                "&#xffff;",
                "\u{85}",
                "\u{1}",
                "\u{a0}",
                "\u{fffe}",
                "&",
                "<",
                ">",
                "<!-- c -->",
                "\0",
                "<pre>\n",
                "<pre>\n\n",
                "&eacute;",
                "&eacute",
                "…",
            ])
            .prop_map(str::to_owned),
            "[a-zäöü ]{0,6}",
        ];
        prop::collection::vec(piece, 0..30).prop_map(|v| v.concat())
    }

    fn unsafe_url(value: &str) -> bool {
        let squeezed: String = value
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect::<String>()
            .to_ascii_lowercase();
        match squeezed.split_once(':') {
            Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
                !matches!(scheme, "http" | "https" | "mailto")
            }
            _ => false,
        }
    }

    fn assert_safe(out: &str) -> Result<(), TestCaseError> {
        let frag = scraper::Html::parse_fragment(out);
        for node in frag.tree.nodes() {
            let Some(e) = node.value().as_element() else {
                continue;
            };
            let allowed_embed = e.name() == "iframe"
                && e.attr("src")
                    .is_some_and(|s| s.starts_with("https://ok.example/"))
                && e.attr("sandbox").is_some();
            prop_assert!(
                allowed_embed
                    || !matches!(
                        e.name(),
                        "script"
                            | "style"
                            | "iframe"
                            | "object"
                            | "embed"
                            | "form"
                            | "base"
                            | "meta"
                            | "link"
                            | "svg"
                            | "math"
                    ),
                "<{}> in {out}",
                e.name()
            );
            for (name, value) in e.attrs() {
                prop_assert!(
                    !name.to_ascii_lowercase().starts_with("on"),
                    "{name} in {out}"
                );
                prop_assert!(
                    !matches!(name, "style" | "srcdoc" | "cite" | "formaction" | "srcset"),
                    "{name} in {out}"
                );
                if matches!(name, "href" | "src") {
                    prop_assert!(!unsafe_url(value), "{name}={value:?} in {out}");
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn sanitised_html_has_no_script_handler_or_unsafe_url(html in hostile_html()) {
            let base = Url::parse("https://partner.example/news/").unwrap();
            assert_safe(&sanitise(&html, Some(&base), &[]))?;
            assert_safe(&sanitise(&html, None, &[]))?;
            assert_safe(&sanitise(&html, Some(&base), &["ok.example".to_owned()]))?;
        }

        #[test]
        fn text_of_sanitised_html_read_from_tokens_equals_the_tree(html in hostile_html()) {
            let base = Url::parse("https://partner.example/news/").unwrap();
            for out in [
                sanitise(&html, Some(&base), &[]),
                sanitise(&html, None, &["ok.example".to_owned()]),
            ] {
                use crate::normalise::text;
                let tree = text::collapse_whitespace(&text::tree_text(&out));
                prop_assert_eq!(text::to_text(&out), tree, "{:?}", out);
            }
        }

        #[test]
        fn text_of_html_without_sanitising_equals_the_text_of_sanitised_html(
            hostile in hostile_html(),
            plain in known_markup(),
            any_text in any::<String>(),
        ) {
            let base = Url::parse("https://partner.example/news/").unwrap();
            for html in [hostile, plain, any_text] {
                let want = crate::normalise::text::to_text(&sanitise(&html, Some(&base), &[]));
                prop_assert_eq!(sanitised_text(&html, Some(&base)), want, "{:?}", html);
            }
        }

        #[test]
        fn sanitising_arbitrary_text_never_panics_and_is_safe(html in any::<String>()) {
            assert_safe(&sanitise(&html, None, &[]))?;
        }
    }
}
