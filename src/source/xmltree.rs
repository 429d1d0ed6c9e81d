//! A small namespace-resolved element tree (quick-xml), for the adapters we write
//! ourselves ([`super::rdf`], [`super::atom03`]) and for reading Dublin Core beside
//! feed-rs ([`super::dc`]).
//!
//! It only ever sees text that [`super::guard`] passed (depth bounded, no entity
//! declarations) and [`super::entities`] prepared (named HTML entities already turned
//! into character references), so it resolves character references and the five XML
//! entities and keeps anything else as the literal text `&name;`. Well-formedness is
//! required: a document that is not XML is the adapter's error, worded by quick-xml.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// One element: its namespace URI (empty when unbound), local name, attributes and
/// children in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// The namespace URI of a prefixed attribute (`rdf:about`), empty for a plain one;
    /// `xml:` attributes keep their prefix in `name` instead (`xml:base`).
    pub ns: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    /// Whether this is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, name))
    }

    /// An unprefixed attribute (`href`, `type`, `xml:base`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// A namespaced attribute (`rdf:about` is `attr_ns(RDF, "about")`).
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// All text inside, markup dropped.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        for n in &self.children {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => e.collect_text(out),
            }
        }
    }

    /// The text inside, trimmed; `None` when that is empty.
    pub fn trimmed_text(&self) -> Option<String> {
        Some(self.text().trim().to_owned()).filter(|t| !t.is_empty())
    }

    /// The children serialised back as markup (inline XHTML or XML content), with
    /// prefixes dropped: what follows reads it as HTML, where they mean nothing.
    pub fn inner_xml(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            write_node(n, &mut out);
        }
        out
    }
}

fn write_node(n: &Node, out: &mut String) {
    match n {
        Node::Text(t) => out.push_str(&escape(t)),
        Node::Element(e) => {
            out.push('<');
            out.push_str(&e.name);
            for a in e.attrs.iter().filter(|a| a.ns.is_empty()) {
                if a.name.starts_with("xml") {
                    continue;
                }
                out.push(' ');
                out.push_str(&a.name);
                out.push_str("=\"");
                out.push_str(&escape(&a.value).replace('"', "&quot;"));
                out.push('"');
            }
            if e.children.is_empty() {
                out.push_str("/>");
            } else {
                out.push('>');
                for c in &e.children {
                    write_node(c, out);
                }
                out.push_str("</");
                out.push_str(&e.name);
                out.push('>');
            }
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Parses a whole document into its root element.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (namespace(ns), event),
            Err(e) => {
                return Err(format!(
                    "unable to parse XML at byte {}: {e}",
                    reader.error_position()
                ))
            }
        };
        match event {
            Event::Start(e) => {
                let el = open(&reader, ns, &e);
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = open(&reader, ns, &e);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("an end tag without a start tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content()),
            Event::CData(c) => push_text(&mut stack, &c),
            Event::GeneralRef(r) => {
                let name: &str = &r;
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    // An out-of-range reference reads as nothing, as in HTML.
                    Err(_) => String::new(),
                    Ok(None) => match name {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => format!("&{other};"),
                    },
                };
                push_text(&mut stack, &resolved);
            }
            Event::Eof => {
                return Err(match stack.last() {
                    Some(open) => format!("the document ends inside <{}>", open.name),
                    None => "the document has no root element".into(),
                })
            }
            _ => {}
        }
    }
}

fn push_text(stack: &mut [Element], text: &str) {
    let Some(el) = stack.last_mut() else {
        return; // whitespace around the root
    };
    if let Some(Node::Text(prev)) = el.children.last_mut() {
        prev.push_str(text);
    } else {
        el.children.push(Node::Text(text.to_owned()));
    }
}

fn namespace(r: ResolveResult<'_>) -> String {
    match r {
        ResolveResult::Bound(ns) => ns.into_inner().to_owned(),
        ResolveResult::Unbound | ResolveResult::Unknown(_) => String::new(),
    }
}

fn open(reader: &NsReader<&[u8]>, ns: String, e: &BytesStart) -> Element {
    let name = e.local_name().into_inner().to_owned();
    let attrs = e
        .attributes()
        .with_checks(false)
        .flatten()
        .filter_map(|a| {
            let key: &str = a.key.into_inner();
            if key == "xmlns" || key.starts_with("xmlns:") {
                return None;
            }
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| crate::normalise::text::decode_entities(&a.value));
            if key.starts_with("xml:") {
                return Some(Attr {
                    ns: String::new(),
                    name: key.to_owned(),
                    value,
                });
            }
            let (ans, local) = reader.resolver().resolve_attribute(a.key);
            Some(Attr {
                ns: namespace(ans),
                name: local.into_inner().to_owned(),
                value,
            })
        })
        .collect();
    Element {
        ns,
        name,
        attrs,
        children: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_attributes_text_and_references_are_resolved() {
        let root = parse(
            r#"<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<item rdf:about="https://p.example/a?x=1&amp;y=2"><title>A &amp; B &#228; &nbsp; <![CDATA[<c>]]></title></item></rdf:RDF>"#,
        )
        .unwrap();
        assert!(root.is("http://www.w3.org/1999/02/22-rdf-syntax-ns#", "RDF"));
        let item = root.child("http://purl.org/rss/1.0/", "item").unwrap();
        assert_eq!(
            item.attr_ns("http://www.w3.org/1999/02/22-rdf-syntax-ns#", "about"),
            Some("https://p.example/a?x=1&y=2")
        );
        assert_eq!(
            item.child("http://purl.org/rss/1.0/", "title")
                .unwrap()
                .text(),
            "A & B ä &nbsp; <c>"
        );
    }

    #[test]
    fn inner_xml_drops_prefixes_and_keeps_markup() {
        let root = parse(
            r#"<c><x:p xmlns:x="http://www.w3.org/1999/xhtml" class="a">1 &lt; 2<x:br/></x:p></c>"#,
        )
        .unwrap();
        assert_eq!(root.inner_xml(), r#"<p class="a">1 &lt; 2<br/></p>"#);
    }

    #[test]
    fn a_document_cut_short_is_an_error() {
        let err = parse("<feed><entry><title>A</title>").unwrap_err();
        assert!(err.contains("ends inside <entry>"), "{err}");
    }
}
