//! Bytes → UTF-8 text, deciding the encoding the way browsers and good aggregators do:
//! BOM → valid UTF-8 → document label (XML declaration or `<meta charset>`) → HTTP charset
//! → detection. feed-rs only honours the prolog and trusts a wrong one, so feeds are
//! decoded here and their declaration rewritten to UTF-8 before parsing.

use encoding_rs::Encoding;

/// Which signal decided the encoding, for `feedwerk doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    Forced,
    Bom,
    ValidUtf8,
    Document,
    Http,
    Detected,
}

impl DecidedBy {
    pub fn describe(self) -> &'static str {
        match self {
            DecidedBy::Forced => "forced by the source's `encoding` setting",
            DecidedBy::Bom => "byte order mark",
            DecidedBy::ValidUtf8 => "the bytes are valid UTF-8",
            DecidedBy::Document => "the document's own declaration",
            DecidedBy::Http => "the HTTP Content-Type charset",
            DecidedBy::Detected => "detected from the bytes (chardetng)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Decoded {
    pub text: String,
    pub encoding: &'static str,
    pub decided_by: DecidedBy,
}

/// Decodes a feed document and rewrites its XML declaration to say UTF-8.
pub fn decode_xml(bytes: &[u8], http_charset: Option<&str>, forced: Option<&str>) -> Decoded {
    let mut d = decode(bytes, http_charset, forced, xml_declared);
    strip_xml_declaration(&mut d.text);
    d
}

/// Decodes an HTML page (`<meta charset>` is its document label).
pub fn decode_html(bytes: &[u8], http_charset: Option<&str>, forced: Option<&str>) -> Decoded {
    decode(bytes, http_charset, forced, html_declared)
}

fn decode(
    bytes: &[u8],
    http_charset: Option<&str>,
    forced: Option<&str>,
    declared: fn(&[u8]) -> Option<&'static Encoding>,
) -> Decoded {
    let pick = |enc: &'static Encoding, by: DecidedBy, body: &[u8]| {
        let (text, _) = enc.decode_without_bom_handling(body);
        Decoded {
            text: text.into_owned(),
            encoding: enc.name(),
            decided_by: by,
        }
    };
    if let Some(enc) = forced.and_then(|l| Encoding::for_label(l.as_bytes())) {
        return pick(enc, DecidedBy::Forced, bytes);
    }
    if let Some((enc, len)) = Encoding::for_bom(bytes) {
        return pick(enc, DecidedBy::Bom, &bytes[len..]);
    }
    // UTF-16 without a BOM is "valid UTF-8" full of NULs; XML 1.0 Appendix F tells it
    // apart by how `<?` is laid out, before the UTF-8 check can mistake it.
    if let Some(enc) = utf16_without_bom(bytes) {
        return pick(enc, DecidedBy::Document, bytes);
    }
    if let Ok(s) = simdutf8::basic::from_utf8(bytes) {
        return Decoded {
            text: s.to_owned(),
            encoding: "UTF-8",
            decided_by: DecidedBy::ValidUtf8,
        };
    }
    // Past this point the bytes are known not to be UTF-8, so a label saying UTF-8 is
    // provably wrong (a common server default); skip it rather than produce U+FFFD.
    let not_utf8 = |e: &&'static Encoding| *e != encoding_rs::UTF_8;
    if let Some(enc) = declared(bytes).filter(not_utf8) {
        return pick(enc, DecidedBy::Document, bytes);
    }
    if let Some(enc) = http_charset
        .and_then(|l| Encoding::for_label(l.as_bytes()))
        .filter(not_utf8)
    {
        return pick(enc, DecidedBy::Http, bytes);
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    pick(
        det.guess(None, chardetng::Utf8Detection::Deny),
        DecidedBy::Detected,
        bytes,
    )
}

/// The encoding the document itself declares (XML declaration, or `<meta charset>` for
/// HTML), whether or not it was used: `doctor` reports a declaration the bytes contradict.
pub fn declared_encoding(bytes: &[u8], html: bool) -> Option<&'static str> {
    let declared = if html { html_declared } else { xml_declared };
    declared(bytes).map(Encoding::name)
}

fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    match bytes.get(..4)? {
        [b'<', 0, b'?', 0] => Some(encoding_rs::UTF_16LE),
        [0, b'<', 0, b'?'] => Some(encoding_rs::UTF_16BE),
        _ => None,
    }
}

fn xml_declared(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(200)];
    let head = String::from_utf8_lossy(head);
    let decl = head.strip_prefix("<?xml")?;
    let end = decl.find("?>")?;
    let decl = &decl[..end];
    let at = decl.find("encoding")?;
    let rest = decl[at + 8..].trim_start().strip_prefix('=')?.trim_start();
    // Only a real quote: the head was decoded lossily, so the first character may be a
    // multi-byte U+FFFD, and slicing after it by one byte panicked (found by fuzzing).
    let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let label = rest[1..].split(quote).next()?;
    Encoding::for_label(label.as_bytes())
}

fn html_declared(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(2048)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let at = head.find("charset=")?;
    let rest = head[at + 8..].trim_start_matches(['"', '\'']);
    let label: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Encoding::for_label(label.as_bytes())
}

/// Removes the XML declaration, so a label that no longer fits (we are UTF-8 now)
/// cannot mislead the parser. In place: the document was just copied once to be decoded.
fn strip_xml_declaration(text: &mut String) {
    let t = text.trim_start_matches('\u{feff}');
    let bom = text.len() - t.len();
    if let Some(rest) = t.trim_start().strip_prefix("<?xml") {
        if let Some(end) = rest.find("?>") {
            let cut = text.len() - rest.len() + end + 2;
            text.replace_range(..cut, "");
            return;
        }
    }
    text.replace_range(..bom, "");
}

/// Escapes `&` that does not start an entity or character reference, the most common
/// way partner feeds are ill-formed ("AT&T", "Fragen & Antworten").
pub fn repair_ampersands(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').unwrap_or(usize::MAX);
        let is_ref = end != usize::MAX
            && end > 0
            && end <= 32
            && (after[..end].chars().all(|c| c.is_ascii_alphanumeric())
                || (after.starts_with('#')
                    && after[1..end]
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == 'x')));
        out.push_str(if is_ref { "&" } else { "&amp;" });
        rest = after;
    }
    out.push_str(rest);
    out
}
