//! A cheap streaming pre-check of XML before a parser builds anything from it: refuses
//! documents that declare entities (the "billion laughs" expansion bomb and its
//! external-entity cousins) and documents nested deeper than any real feed.
//!
//! feed-rs (quick-xml) never fetches a DTD and keeps undeclared entities as literal text,
//! so a bomb cannot explode inside it — but it would still be republished as garbage, and
//! its tree building recurses per element, so depth is bounded here, before it runs.
//! Well-formedness problems are left to the parser, which words them better.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Deeper than this is not a feed (RSS/Atom need about 6; XHTML content a few dozen).
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostileXml {
    #[error("the document declares entities in its DTD (<!ENTITY …>); refused, as entity expansion (\"billion laughs\") and external entities are attacks, not feeds")]
    EntityDeclaration,
    #[error("elements nested deeper than {MAX_DEPTH} levels; refused")]
    TooDeep,
}

/// Scans `text` once, in constant memory. `Ok` means "safe to hand to the parser".
pub fn check(text: &str) -> Result<(), HostileXml> {
    let mut reader = Reader::from_str(text);
    // Mismatched end tags are the parser's business, not a safety question.
    reader.config_mut().check_end_names = false;
    let mut guard = Guard::default();
    loop {
        match reader.read_event() {
            Ok(Event::Eof) | Err(_) => return Ok(()),
            Ok(e) => guard.event(&e)?,
        }
    }
}

/// The check of [`check`], fed one event at a time by a reader that reads the document
/// for something else too (the feed adapter's scope scan), so the document is read once.
/// The reader must not check end names (as in [`check`]), and the check ends, with `Ok`,
/// at the reader's first error or at the end of input.
#[derive(Debug, Default)]
pub struct Guard {
    depth: usize,
}

impl Guard {
    pub fn event(&mut self, event: &Event) -> Result<(), HostileXml> {
        match event {
            Event::Start(_) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(HostileXml::TooDeep);
                }
            }
            Event::End(_) => self.depth = self.depth.saturating_sub(1),
            Event::DocType(d) => {
                let raw: &str = d.as_ref();
                if raw.to_ascii_uppercase().contains("<!ENTITY") {
                    return Err(HostileXml::EntityDeclaration);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_doctype_without_entities_is_fine() {
        let rss091 = r#"<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>t</title></channel></rss>"#;
        assert_eq!(check(rss091), Ok(()));
    }

    #[test]
    fn entity_declarations_are_refused() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><rss><channel><title>&lol2;</title></channel></rss>"#;
        assert_eq!(check(bomb), Err(HostileXml::EntityDeclaration));
        let xxe = r#"<!DOCTYPE r [<!entity x SYSTEM "file:///etc/passwd">]><rss>&x;</rss>"#;
        assert_eq!(check(xxe), Err(HostileXml::EntityDeclaration));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("<rss>{}{}</rss>", "<a>".repeat(300), "</a>".repeat(300));
        assert_eq!(check(&deep), Err(HostileXml::TooDeep));
        let ok = format!("<rss>{}{}</rss>", "<a>".repeat(50), "</a>".repeat(50));
        assert_eq!(check(&ok), Ok(()));
    }
}
