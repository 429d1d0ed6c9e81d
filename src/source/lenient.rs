//! Conservative repairs of feed XML a strict parser refuses, tried only after a parse
//! failed, and only where nothing can be lost: the document feedparser reads with its
//! "bozo" bit set. Each repair says what it did, for `feedwerk doctor`.
//!
//! - A bare `&` ("AT&T") is escaped ([`super::decode::repair_ampersands`]).
//! - End tags at the very end of the document that do not match the elements they
//!   close (`</chanel></RSS>`) are rewritten to match — but only when the first wrong
//!   one closes no item and sits inside none, every open element *is* closed, by count,
//!   and nothing but end tags, whitespace and comments follows it.
//!
//! What is deliberately not repaired: a document that simply stops (missing end tags,
//! a cut-off tag or text). That is a truncated body, and guessing where it ended would
//! publish a half-read feed while the last good copy is the better answer.

use quick_xml::events::Event;
use quick_xml::Reader;

/// The text with the trailing end tags fixed, and what was fixed; `None` when the
/// document has no such fault (or has another one as well).
pub fn repair_trailing_end_tags(text: &str) -> Option<(String, String)> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = false;
    let mut stack: Vec<String> = Vec::new();
    // (start, end, the name it should have) of each end tag from the first mismatch on.
    let mut tail: Vec<(usize, usize, String, String)> = Vec::new();
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().ok()?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(e) => {
                if !tail.is_empty() {
                    return None;
                }
                stack.push(e.name().as_ref().to_owned());
            }
            Event::End(e) => {
                let written = e.name().as_ref().to_owned();
                if tail.is_empty()
                    && stack.last() != Some(&written)
                    && stack.iter().any(|n| is_item(n))
                {
                    // Inside an item a wrong end tag may mean a lost one; not "the end".
                    return None;
                }
                let expected = stack.pop()?;
                if !tail.is_empty() || written != expected {
                    tail.push((before, after, written, expected));
                }
            }
            Event::Text(t) if !tail.is_empty() && !t.xml10_content().trim().is_empty() => {
                return None;
            }
            Event::Text(_) if !tail.is_empty() => {}
            Event::Comment(_) => {}
            Event::Eof => break,
            _ if !tail.is_empty() => return None,
            _ => {}
        }
    }
    if tail.is_empty() || !stack.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut fixed = Vec::new();
    for (start, end, written, expected) in &tail {
        out.push_str(&text[at..*start]);
        out.push_str(&format!("</{expected}>"));
        at = *end;
        if written != expected {
            fixed.push(format!("</{written}> as </{expected}>"));
        }
    }
    out.push_str(&text[at..]);
    Some((
        out,
        format!(
            "end tags at the end of the document did not match the elements they close; read {}",
            fixed.join(", ")
        ),
    ))
}

/// An item element of RSS (`item`, `rss:item`) or Atom (`entry`).
fn is_item(qname: &str) -> bool {
    let local = qname.rsplit(':').next().unwrap_or(qname);
    local == "item" || local == "entry"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_closing_tag_at_the_end_is_fixed() {
        let (t, note) = repair_trailing_end_tags(
            "<rss><channel><item><title>A</title></item></channel></RSS>\n",
        )
        .unwrap();
        assert_eq!(
            t,
            "<rss><channel><item><title>A</title></item></channel></rss>\n"
        );
        assert!(note.contains("</RSS> as </rss>"), "{note}");
        let (t, _) =
            repair_trailing_end_tags("<rss><channel><item>x</item></chanel></rss>").unwrap();
        assert_eq!(t, "<rss><channel><item>x</item></channel></rss>");
    }

    #[test]
    fn a_truncated_document_is_not_repaired() {
        // Cut after an item: the end tags are missing, not wrong.
        assert_eq!(
            repair_trailing_end_tags("<rss><channel><item>x</item>"),
            None
        );
        assert_eq!(repair_trailing_end_tags("<rss><channel><item>x</ite"), None);
        // A mismatch in the middle, with content after it, is not "at the end".
        assert_eq!(
            repair_trailing_end_tags("<rss><channel><item>x</itme><item>y</item></channel></rss>"),
            None
        );
        // A wrong end tag inside an item may stand for a lost element.
        assert_eq!(
            repair_trailing_end_tags("<rss><channel><item><title>x</titel></item></channel></rss>"),
            None
        );
        // One end tag too few, even if the last names match.
        assert_eq!(
            repair_trailing_end_tags("<rss><channel><item>x</channel></rss>"),
            None
        );
    }
}
