//! Channel documents put together from item fragments: each item is rendered once per
//! format and publishing pass, and its bytes are spliced into the envelope (the
//! feed-level part) of every document that holds it.
//!
//! In a cold medium build an item is in its source's channel, each of its tags', its
//! language's and its archive page: 67 504 item renders for 23 393 distinct fragments
//! (8 051 items; RSS and Atom three times over, JSON Feed 2.3 times). A fragment depends
//! on the stored item (with its other copies) and on the pass's site and sources, never
//! on the channel, so one rendered for one channel is the same bytes in every other.
//!
//! What a fragment is per format (the envelopes are the writers' own, see
//! [`super::rss`], [`super::atom`], [`super::json`]): an RSS `<item>` element, an Atom
//! `<entry>` element, both as the crates write them inside their feeds, and a JSON Feed
//! item object as `serde_json` pretty-prints it inside `items`. Each fragment is checked
//! once ([`Fragment::check`]), whatever the number of documents it goes into; how a
//! spliced document's check uses that is [`check_spliced`]'s.
//!
//! Which items a channel holds, and when its documents are written, is `publish`'s.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use super::verify::{self, Depth, VerifyError, Within};
use super::DocKind;
use crate::model::{AlsoAt, Format};
use crate::store::StoredItem;

/// One item rendered in one format, with its check once made.
pub struct Fragment {
    bytes: Vec<u8>,
    checked: OnceLock<Result<(), VerifyError>>,
}

impl Fragment {
    pub fn new(bytes: Vec<u8>) -> Self {
        Fragment {
            bytes,
            checked: OnceLock::new(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Checks the fragment as an item of a `format` document ([`verify::fragment`]):
    /// the first document holding it pays for the check, the others reuse its result.
    /// Positions in an error are from the fragment's start.
    pub fn check(&self, format: Format) -> Result<(), VerifyError> {
        self.checked
            .get_or_init(|| verify::fragment(format, &self.bytes))
            .clone()
    }
}

/// A rendered channel document and, when it was spliced from fragments, where they are.
pub struct Assembled {
    pub bytes: Vec<u8>,
    pub splice: Option<Splice>,
}

impl From<Vec<u8>> for Assembled {
    fn from(bytes: Vec<u8>) -> Self {
        Assembled {
            bytes,
            splice: None,
        }
    }
}

/// Where the fragments of a spliced document are: `bytes[start..end]` is the fragments'
/// bytes one after the other; the rest, `bytes[..start]` and `bytes[end..]`, is the
/// envelope. Only XML documents are described this way (a JSON Feed's items have
/// separators between them, and JSON documents are checked whole).
pub struct Splice {
    pub format: Format,
    pub start: usize,
    pub end: usize,
    pub parts: Vec<Arc<Fragment>>,
}

/// Puts `parts` into `envelope` at `at`, joined by nothing (XML) or by `sep`, with
/// `before` and `after` around them when there is at least one (JSON's layout).
pub(super) fn splice(
    format: Format,
    envelope: Vec<u8>,
    at: usize,
    parts: &[Arc<Fragment>],
    layout: Option<(&[u8], &[u8], &[u8])>,
) -> Assembled {
    if parts.is_empty() {
        return Assembled {
            splice: layout.is_none().then(|| Splice {
                format,
                start: at,
                end: at,
                parts: Vec::new(),
            }),
            bytes: envelope,
        };
    }
    let (before, sep, after) = layout.unwrap_or((b"", b"", b""));
    let len: usize = parts.iter().map(|p| p.bytes.len() + sep.len()).sum();
    let mut out = Vec::with_capacity(envelope.len() + len + before.len() + after.len());
    out.extend_from_slice(&envelope[..at]);
    out.extend_from_slice(before);
    let start = out.len();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(&p.bytes);
    }
    let end = out.len();
    out.extend_from_slice(after);
    out.extend_from_slice(&envelope[at..]);
    Assembled {
        bytes: out,
        splice: layout.is_none().then(|| Splice {
            format,
            start,
            end,
            parts: parts.to_vec(),
        }),
    }
}

/// The fragments rendered in one publishing pass, by item and format, so each is
/// rendered (and checked) once however many documents hold it. Bounded by the bytes it
/// holds: when over its budget, the items rendered first go first. A cold medium build
/// renders 66 MB of distinct fragments; tag channels draw items from every source in
/// no order a smaller cache could follow, so hits fall about in proportion to the
/// budget (a simulation over that build's documents: 25 % of the repeats at 32 MB, 98 %
/// at 64 MB).
///
/// Only for one pass: a fragment depends on the site and sources of the pass, and an
/// item is taken as the same item while its ID, published ID and other copies are the
/// same (a pass reads one state of the store).
pub struct Fragments {
    held: HashMap<String, Held>,
    order: VecDeque<String>,
    bytes: usize,
    budget: usize,
}

struct Held {
    published_id: String,
    also_at: Vec<AlsoAt>,
    /// Per format, in [`Format::ALL`]'s order.
    parts: [Option<Arc<Fragment>>; 3],
}

fn slot(format: Format) -> usize {
    match format {
        Format::Rss => 0,
        Format::Atom => 1,
        Format::Json => 2,
    }
}

impl Fragments {
    /// A cache holding at most about `budget` bytes of fragments (0: none).
    pub fn new(budget: usize) -> Self {
        Fragments {
            held: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// The fragment of `s` in `format`: the one rendered before in this pass, else the
    /// bytes of `render`, kept while the budget allows.
    pub fn get_or_render(
        &mut self,
        format: Format,
        s: &StoredItem,
        render: impl FnOnce() -> Vec<u8>,
    ) -> Arc<Fragment> {
        let id = s.item.id.0.as_str();
        if let Some(h) = self.held.get(id) {
            if h.published_id == s.published_id && h.also_at == s.also_at {
                if let Some(p) = &h.parts[slot(format)] {
                    return p.clone();
                }
            }
        }
        let part = Arc::new(Fragment::new(render()));
        let size = part.bytes.len();
        if size > self.budget {
            return part;
        }
        let same = self
            .held
            .get(id)
            .is_some_and(|h| h.published_id == s.published_id && h.also_at == s.also_at);
        if !same {
            if let Some(old) = self.held.remove(id) {
                self.bytes -= held_bytes(&old);
                self.order.retain(|o| o != id);
            }
            self.held.insert(
                id.to_owned(),
                Held {
                    published_id: s.published_id.clone(),
                    also_at: s.also_at.clone(),
                    parts: [None, None, None],
                },
            );
            self.order.push_back(id.to_owned());
        }
        let h = self.held.get_mut(id).expect("just inserted");
        h.parts[slot(format)] = Some(part.clone());
        self.bytes += size;
        while self.bytes > self.budget {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(h) = self.held.remove(&old) {
                self.bytes -= held_bytes(&h);
            }
        }
        part
    }
}

fn held_bytes(h: &Held) -> usize {
    h.parts.iter().flatten().map(|p| p.bytes.len()).sum()
}

/// Checks a channel document spliced from item fragments ([`super::splice`]) as
/// [`check`] does, reading each fragment once however many documents hold it: with
/// [`Depth::Scan`], an XML document passes when
/// - the fragments are the document's bytes between `splice.start` and `splice.end`;
/// - the envelope (the document without them) is a well-formed document with the
///   right root, and `splice.start` lies between two pieces of its markup, inside
///   as many elements as an entry is (RSS `rss/channel`, Atom `feed`);
/// - each fragment passes [`verify::fragment`]: a single well-formed `<item>` or `<entry>`
///   element of legal characters;
/// - the envelope's entries and the fragments are `items` together.
///
/// Then the whole is what [`verify::check`] would pass: balanced elements put between two
/// pieces of markup keep a document well-formed, characters and references are
/// checked where they are, and each fragment adds one entry at the entries' depth.
/// JSON Feeds, and any document at [`Depth::Reparse`], are checked whole.
pub fn check_spliced(
    kind: DocKind,
    body: &[u8],
    splice: Option<&Splice>,
    items: Option<usize>,
    depth: Depth,
) -> Result<(), VerifyError> {
    let (Some(splice), Depth::Scan, DocKind::Feed(f) | DocKind::Archive(f)) = (splice, depth, kind)
    else {
        return verify::check(kind, body, items, depth);
    };
    let Some((root, entry)) = verify::xml_entry(f).filter(|_| splice.format == f) else {
        return verify::check(kind, body, items, depth);
    };
    let mut at = splice.start;
    for part in &splice.parts {
        let bytes = part.bytes();
        if body.get(at..at + bytes.len()) != Some(bytes) {
            return Err(VerifyError::Xml {
                at: at as u64,
                message: "an item is not where the document says".into(),
            });
        }
        at += bytes.len();
    }
    if at != splice.end || splice.end > body.len() {
        return Err(VerifyError::Xml {
            at: at as u64,
            message: "the items do not end where the document says".into(),
        });
    }
    let mut envelope = Vec::with_capacity(splice.start + body.len() - splice.end);
    envelope.extend_from_slice(&body[..splice.start]);
    envelope.extend_from_slice(&body[splice.end..]);
    let scan = verify::scan(
        verify::utf8(&envelope)?,
        Some(entry),
        Within::Splice(splice.start),
    )?;
    if scan.root != root {
        return Err(VerifyError::Root {
            found: scan.root,
            expected: root.into(),
        });
    }
    if scan.depth_at != Some(entry.depth) {
        return Err(VerifyError::Xml {
            at: splice.start as u64,
            message: "the items are not spliced in where entries go".into(),
        });
    }
    let mut offset = splice.start;
    for part in &splice.parts {
        part.check(f).map_err(|e| e.shifted(offset))?;
        offset += part.bytes().len();
    }
    let found = scan.entries + splice.parts.len();
    match items {
        Some(n) if found != n => Err(VerifyError::ItemCount { found, expected: n }),
        _ => Ok(()),
    }
}
