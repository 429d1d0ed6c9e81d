//! The text of HTML whose tree is exactly its tags' nesting, read from the tokens alone.
//!
//! `to_text` reads text from the tree the HTML parser builds, and building a tree
//! (scraper's nodes, attribute maps, the tree builder's bookkeeping) was most of the cost
//! of reading the sanitiser's own output back (issue 16). For most markup, and nearly all
//! of what the sanitiser writes, that tree is simply the nesting of the tags: every start
//! tag opens an element at that point, every end tag closes the innermost open element,
//! text goes into the innermost one. Then the tokens alone give the same text, and this
//! module reads them with html5ever's tokenizer, the same one the parser uses.
//!
//! The rules below say when that holds; at anything else (a tag outside the sanitiser's
//! set, an end tag that is not the innermost open element, anything the parser would
//! close, move or insert by itself) [`text`] gives up and returns `None`, and the caller
//! builds the tree as before. It owns no text rules: block boundaries and hidden content
//! are the caller's (`is_block`), and whitespace is collapsed by the caller.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

/// The raw text of `html`, with `boundary` pushed at the start and the end of every
/// element `is_block` names, exactly as a walk over the parsed tree would give it; `None`
/// when the parser's tree could differ from the tags' nesting.
pub fn text(html: &str, is_block: fn(&str) -> bool) -> Option<String> {
    let sink = Reader {
        walk: RefCell::new(Walk {
            out: String::with_capacity(html.len()),
            open: Vec::new(),
            is_block,
            gave_up: false,
            after_pre: false,
        }),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let mut walk = tokenizer.sink.walk.into_inner();
    if walk.gave_up {
        return None;
    }
    // At the end of input the parser leaves open elements open; a tree walk still
    // closes them.
    while let Some(name) = walk.open.pop() {
        walk.boundary(name);
    }
    Some(walk.out)
}

/// Elements read here: the sanitiser's allow-list (without `iframe`, whose content the
/// parser reads as raw text). Anything else gives up.
const KNOWN: &[&str] = super::elements::ALLOWED;

/// Elements without content or end tag.
fn is_void(name: &str) -> bool {
    matches!(name, "br" | "hr" | "img")
}

fn is_heading(name: &str) -> bool {
    matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

/// Start tags that close an open `p` ("close a p element" in the HTML standard's tree
/// construction, among the known elements).
fn closes_p(name: &str) -> bool {
    is_heading(name)
        || matches!(
            name,
            "blockquote"
                | "dl"
                | "dd"
                | "dt"
                | "figcaption"
                | "figure"
                | "hr"
                | "li"
                | "ol"
                | "p"
                | "pre"
                | "table"
                | "ul"
        )
}

/// The standard's "special" elements among the known ones: where the search for an open
/// `li` (or `dd`/`dt`) that a new one would close stops.
fn is_special(name: &str) -> bool {
    is_heading(name)
        || matches!(
            name,
            "blockquote"
                | "br"
                | "caption"
                | "dd"
                | "dl"
                | "dt"
                | "figcaption"
                | "figure"
                | "hr"
                | "img"
                | "li"
                | "ol"
                | "p"
                | "pre"
                | "table"
                | "tbody"
                | "td"
                | "tfoot"
                | "th"
                | "thead"
                | "tr"
                | "ul"
        )
}

/// Inside these (as the innermost open element) the parser moves text and most elements
/// out in front of the table ("foster parenting").
fn is_table_context(name: &str) -> bool {
    matches!(name, "table" | "tbody" | "thead" | "tfoot" | "tr")
}

struct Walk {
    out: String,
    /// Open elements, innermost last (the fragment's root is not in it).
    open: Vec<&'static str>,
    is_block: fn(&str) -> bool,
    gave_up: bool,
    /// The last token opened a `pre`: the parser drops a newline that comes next.
    after_pre: bool,
}

impl Walk {
    fn boundary(&mut self, name: &str) {
        if (self.is_block)(name) {
            self.out.push(' ');
        }
    }

    fn current(&self) -> Option<&'static str> {
        self.open.last().copied()
    }

    /// Whether the parser would insert this start tag where it stands, without closing,
    /// creating or moving anything.
    fn opens_in_place(&self, name: &str) -> bool {
        let current = self.current();
        let in_table = current.is_some_and(is_table_context);
        let placed = match name {
            "caption" | "tbody" | "thead" | "tfoot" => current == Some("table"),
            "tr" => matches!(current, Some("tbody" | "thead" | "tfoot")),
            "td" | "th" => current == Some("tr"),
            _ => !in_table,
        };
        if !placed {
            return false;
        }
        if closes_p(name) && self.open.contains(&"p") {
            return false;
        }
        if is_heading(name) && current.is_some_and(is_heading) {
            return false;
        }
        if name == "a" && self.open.contains(&"a") {
            return false;
        }
        // A new item closes an open item of its kind, unless a special element
        // (other than `p`) stands between them.
        let closes: &[&str] = match name {
            "li" => &["li"],
            "dd" | "dt" => &["dd", "dt"],
            _ => &[],
        };
        if !closes.is_empty() {
            for open in self.open.iter().rev() {
                if closes.contains(open) {
                    return false;
                }
                if is_special(open) && *open != "p" {
                    break;
                }
            }
        }
        true
    }

    fn token(&mut self, token: Token) {
        // Any token ends the chance to drop the newline after `<pre>`, even a parse error.
        let after_pre = std::mem::take(&mut self.after_pre);
        match token {
            Token::TagToken(tag) => {
                let Some(name) = KNOWN.iter().copied().find(|k| *k == &*tag.name) else {
                    self.gave_up = true;
                    return;
                };
                match tag.kind {
                    TagKind::StartTag => {
                        if !self.opens_in_place(name) {
                            self.gave_up = true;
                            return;
                        }
                        self.boundary(name);
                        if is_void(name) {
                            self.boundary(name);
                        } else {
                            self.open.push(name);
                        }
                        self.after_pre = name == "pre";
                    }
                    TagKind::EndTag => {
                        if self.current() != Some(name) {
                            self.gave_up = true;
                            return;
                        }
                        self.open.pop();
                        self.boundary(name);
                    }
                }
            }
            Token::CharacterTokens(text) => {
                let text = match text.strip_prefix('\n') {
                    Some(rest) if after_pre => rest,
                    _ => &text,
                };
                // Whitespace stays where it is even in a table; other text is moved out.
                if self.current().is_some_and(is_table_context)
                    && !text
                        .chars()
                        .all(|c| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' '))
                {
                    self.gave_up = true;
                    return;
                }
                self.out.push_str(text);
            }
            // The parser drops these in HTML content; comments are no text.
            Token::NullCharacterToken
            | Token::CommentToken(_)
            | Token::DoctypeToken(_)
            | Token::ParseError(_)
            | Token::EOFToken => {}
        }
    }
}

struct Reader {
    walk: RefCell<Walk>,
}

impl TokenSink for Reader {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut walk = self.walk.borrow_mut();
        if !walk.gave_up {
            walk.token(token);
        }
        TokenSinkResult::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The tree walk `to_text` makes, with a space at every element boundary `is_block`
    /// names: what [`text`] must equal whenever it answers.
    fn tree_text(html: &str, is_block: fn(&str) -> bool) -> String {
        use ego_tree::iter::Edge;
        let frag = scraper::Html::parse_fragment(html);
        let mut out = String::new();
        for edge in frag.root_element().traverse() {
            match edge {
                Edge::Open(node) | Edge::Close(node) => {
                    if let Some(e) = node.value().as_element() {
                        if e.name() != "html" && is_block(e.name()) {
                            out.push(' ');
                        }
                    } else if let (Edge::Open(_), Some(t)) = (edge, node.value().as_text()) {
                        out.push_str(t);
                    }
                }
            }
        }
        out
    }

    /// Every element counts: the strictest comparison, since each open and close must
    /// then fall at the same place in the text.
    fn every(_: &str) -> bool {
        true
    }

    fn some_blocks(name: &str) -> bool {
        matches!(
            name,
            "p" | "li" | "td" | "br" | "img" | "h2" | "table" | "tr"
        )
    }

    fn assert_same(html: &str) -> Result<bool, TestCaseError> {
        for is_block in [every as fn(&str) -> bool, some_blocks] {
            if let Some(fast) = text(html, is_block) {
                prop_assert_eq!(&fast, &tree_text(html, is_block), "{:?}", html);
            } else {
                return Ok(false);
            }
        }
        Ok(true)
    }

    #[test]
    fn well_nested_markup_is_read_without_a_tree() {
        for html in [
            "<p>Ein <b>fetter</b> &amp; <a href=\"x\">Link</a></p><p>Zwei<br>Zeilen</p>",
            "<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>",
            "<table><tbody><tr><td>a</td><td><table><tbody><tr><td>b</td></tr></tbody></table></td></tr></tbody></table>",
            "<h2>T</h2><figure><img src=\"i\"><figcaption>c</figcaption></figure>",
            "x &lt;script&gt; y &nbsp; z",
            "<dl><dt>a</dt><dd>b</dd></dl>",
            "unclosed <b>bold",
        ] {
            assert!(assert_same(html).unwrap(), "{html}");
        }
    }

    #[test]
    fn markup_the_parser_would_rearrange_is_left_to_the_tree() {
        for html in [
            "<p>a<ul><li>b</li></ul></p>",
            "<b>a<i>b</b>c</i>",
            "<table><tr><td>a</td></tr></table>",
            "<table>text<tr></tr></table>",
            "<li>a<li>b",
            "<a>1<a>2</a></a>",
            "<h1>a<h2>b</h2></h1>",
            "<td>cell</td>",
            "</p>",
            "<div>x</div>",
            "<script>x</script>",
            "<svg><a>x</a></svg>",
        ] {
            assert_eq!(text(html, every), None, "{html}");
        }
    }

    fn piece() -> impl Strategy<Value = String> {
        let tags = prop::sample::select(vec![
            "p",
            "b",
            "i",
            "a",
            "li",
            "ul",
            "ol",
            "dl",
            "dt",
            "dd",
            "table",
            "tbody",
            "thead",
            "tr",
            "td",
            "th",
            "caption",
            "br",
            "hr",
            "img",
            "h1",
            "h2",
            "pre",
            "span",
            "blockquote",
            "figure",
            "figcaption",
            "em",
            "strong",
            "code",
            "div",
            "script",
            "style",
            "svg",
            "math",
            "template",
            "iframe",
            "textarea",
            "title",
            "object",
            "select",
            "option",
            "form",
            "image",
        ]);
        prop_oneof![
            tags.clone().prop_map(|t| format!("<{t}>")),
            tags.clone().prop_map(|t| format!("</{t}>")),
            tags.prop_map(|t| format!("<{t}/>")),
            prop::sample::select(vec![
                "a",
                "wort ",
                " ",
                "\n",
                "\t",
                "&amp;",
                "&lt;",
                "&nbsp;",
                "&",
                "<",
                ">",
                "<!-- c -->",
                "<![CDATA[x]]>",
                "<!DOCTYPE html>",
                "\u{feff}",
                "\r\n",
                "\0",
                "&#0;",
                "&#x85;",
            ])
            .prop_map(str::to_owned),
            "[^\u{0}]{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn whenever_the_tokens_answer_they_equal_the_tree(
            pieces in prop::collection::vec(piece(), 0..40)
        ) {
            assert_same(&pieces.concat())?;
        }

        #[test]
        fn arbitrary_text_read_from_tokens_equals_the_tree(html in any::<String>()) {
            assert_same(&html)?;
        }
    }
}
