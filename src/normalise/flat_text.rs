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
    let mut walk = Walk::new(html, is_block);
    if !read_serialised(html, &mut walk) {
        walk = tokenized(html, is_block);
    }
    walk.finish()
}

/// The walk over html5ever's tokens of `html`.
fn tokenized(html: &str, is_block: fn(&str) -> bool) -> Walk {
    let sink = Reader {
        walk: RefCell::new(Walk::new(html, is_block)),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.walk.into_inner()
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
    fn new(html: &str, is_block: fn(&str) -> bool) -> Walk {
        Walk {
            out: String::with_capacity(html.len()),
            open: Vec::new(),
            is_block,
            gave_up: false,
            after_pre: false,
        }
    }

    /// The text, unless the walk gave up. At the end of input the parser leaves open
    /// elements open; a tree walk still closes them.
    fn finish(mut self) -> Option<String> {
        if self.gave_up {
            return None;
        }
        while let Some(name) = self.open.pop() {
            self.boundary(name);
        }
        Some(self.out)
    }

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
        match token {
            Token::TagToken(tag) => match tag.kind {
                TagKind::StartTag => self.start_tag(&tag.name),
                TagKind::EndTag => self.end_tag(&tag.name),
            },
            Token::CharacterTokens(text) => self.characters(&text),
            // The parser drops these in HTML content; comments are no text.
            Token::NullCharacterToken
            | Token::CommentToken(_)
            | Token::DoctypeToken(_)
            | Token::ParseError(_)
            | Token::EOFToken => self.after_pre = false,
        }
    }

    fn start_tag(&mut self, name: &str) {
        // Any token ends the chance to drop the newline after `<pre>`, even a parse error.
        self.after_pre = false;
        let Some(name) = KNOWN.iter().copied().find(|k| *k == name) else {
            self.gave_up = true;
            return;
        };
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

    fn end_tag(&mut self, name: &str) {
        self.after_pre = false;
        let Some(name) = KNOWN.iter().copied().find(|k| *k == name) else {
            self.gave_up = true;
            return;
        };
        if self.current() != Some(name) {
            self.gave_up = true;
            return;
        }
        self.open.pop();
        self.boundary(name);
    }

    fn characters(&mut self, text: &str) {
        let after_pre = std::mem::take(&mut self.after_pre);
        let text = match text.strip_prefix('\n') {
            Some(rest) if after_pre => rest,
            _ => text,
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
}

/// Reads `html` into `walk` when it is written the way html5ever's serialiser writes
/// (the sanitiser's output): lower-case tags, attributes as ` name="value"`, text with
/// no references but `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&nbsp;`, no comments, no
/// carriage returns, NULs or other markup. Such input gives the tokenizer's very tokens
/// (text perhaps cut at other places, which no rule here depends on: only the first text
/// after `<pre>` is looked at, and it starts at the same place), so this is a cheaper
/// way to the same walk; the tokenizer was most of reading the sanitiser's output back.
/// `false` at anything else: then `walk` holds part of the input and must be dropped.
fn read_serialised(html: &str, walk: &mut Walk) -> bool {
    // The tokenizer drops a leading byte order mark.
    if html.starts_with('\u{feff}') {
        return false;
    }
    let b = html.as_bytes();
    if memchr::memchr(b'\0', b).is_some() {
        return false;
    }
    let mut i = 0;
    let mut text = 0;
    while !walk.gave_up {
        // Text runs are skipped with memchr's SIMD search.
        let Some(at) = memchr::memchr3(b'<', b'&', b'\r', &b[i..]) else {
            break;
        };
        i += at;
        match b[i] {
            b'<' | b'&' => {
                if text < i {
                    walk.characters(&html[text..i]);
                    if walk.gave_up {
                        break;
                    }
                }
                let Some(next) = (if b[i] == b'<' {
                    tag(html, i, walk)
                } else {
                    reference(html, i, walk)
                }) else {
                    return false;
                };
                i = next;
                text = i;
            }
            _ => return false,
        }
    }
    if !walk.gave_up && text < b.len() {
        walk.characters(&html[text..]);
    }
    true
}

/// One of the references [`read_serialised`] reads at `at`: its end.
fn reference(html: &str, at: usize, walk: &mut Walk) -> Option<usize> {
    let rest = &html[at..];
    let (len, c) = [
        ("&amp;", "&"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&nbsp;", "\u{a0}"),
    ]
    .into_iter()
    .find(|(r, _)| rest.starts_with(r))
    .map(|(r, c)| (r.len(), c))?;
    walk.characters(c);
    Some(at + len)
}

/// A start or end tag as the serialiser writes it, at `at`: its end.
fn tag(html: &str, at: usize, walk: &mut Walk) -> Option<usize> {
    let b = html.as_bytes();
    let end_tag = b.get(at + 1) == Some(&b'/');
    let name_start = at + if end_tag { 2 } else { 1 };
    if !b.get(name_start).is_some_and(u8::is_ascii_lowercase) {
        return None;
    }
    let name_len = b[name_start..]
        .iter()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .count();
    let name = &html[name_start..name_start + name_len];
    let mut i = name_start + name_len;
    if !end_tag {
        // ` name="value"`, any number of times.
        while b.get(i) == Some(&b' ') {
            let attr = i + 1;
            let n = b[attr..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':'))
                .count();
            if n == 0 || b.get(attr + n..attr + n + 2) != Some(b"=\"") {
                return None;
            }
            let value = attr + n + 2;
            i = value + memchr::memchr(b'"', &b[value..])? + 1;
        }
    }
    if b.get(i) != Some(&b'>') {
        return None;
    }
    if end_tag {
        walk.end_tag(name);
    } else {
        walk.start_tag(name);
    }
    Some(i + 1)
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

    /// Whenever the serialiser-shaped reading is taken, it ends as the tokenizer's does.
    fn assert_serialised_reading_equals_the_tokens(html: &str) -> Result<(), TestCaseError> {
        for is_block in [every as fn(&str) -> bool, some_blocks] {
            let mut walk = Walk::new(html, is_block);
            if read_serialised(html, &mut walk) {
                prop_assert_eq!(
                    walk.finish(),
                    tokenized(html, is_block).finish(),
                    "{:?}",
                    html
                );
            }
        }
        Ok(())
    }

    #[test]
    fn the_sanitisers_output_is_read_without_the_tokenizer() {
        let out = crate::normalise::html::sanitise(
            "<p>Ein <b>fetter</b> &amp; <a href=\"/x?a=1&b=2\" title='\"q\"'>Link</a>&nbsp;&lt;3</p><pre>\ncode</pre><img src=\"i.png\" alt=\"\">",
            Some(&url::Url::parse("https://partner.example/").unwrap()),
            &[],
        );
        let mut walk = Walk::new(&out, every);
        assert!(read_serialised(&out, &mut walk), "{out}");
        assert_eq!(walk.finish(), tokenized(&out, every).finish());
        for odd in [
            "<P>x</P>",
            "a &eacute; b",
            "<br/>",
            "<a href=x>",
            "x\r\ny",
            "<!-- c -->",
            "\u{feff}x",
            "<a  b=\"\">",
        ] {
            assert!(!read_serialised(odd, &mut Walk::new(odd, every)), "{odd}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn the_serialised_reading_equals_the_tokens(pieces in prop::collection::vec(piece(), 0..40)) {
            assert_serialised_reading_equals_the_tokens(&pieces.concat())?;
        }

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
