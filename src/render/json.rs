//! JSON Feed 1.1 (https://jsonfeed.org/version/1.1): plain serde structs. Provenance goes
//! into the `_feedwerk` extension object, as the spec's extension rules ask.

use std::borrow::Cow;

use serde::Serialize;

use super::FeedDoc;
use crate::model::Format;
use crate::store::StoredItem;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    language: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hubs: Option<Vec<Hub>>,
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct Hub {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

/// One item, borrowing the stored item's strings: a feed is serialised straight from
/// the items the pass holds, without copying every body and title into the document
/// first.
#[derive(Serialize)]
struct JsonItem<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_text: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    date_published: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_modified: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    _feedwerk: Extension<'a>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: Cow<'a, str>,
}

#[derive(Serialize)]
struct Extension<'a> {
    source: &'a str,
    source_title: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also_at: Vec<AlsoAtJson<'a>>,
}

#[derive(Serialize)]
struct AlsoAtJson<'a> {
    source: &'a str,
    source_title: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

/// The document with an empty `items` array, and where the items go: inside it.
pub fn envelope(doc: &FeedDoc) -> (Vec<u8>, usize) {
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &doc.channel.title,
        home_page_url: doc.site.base_url.as_str(),
        feed_url: doc.self_url(Format::Json).to_string(),
        description: (!doc.site.description.is_empty()).then_some(doc.site.description.as_str()),
        language: doc.language(),
        authors: doc
            .site
            .author
            .iter()
            .map(|a| Author {
                name: Cow::Borrowed(a),
            })
            .collect(),
        hubs: doc.websub_hub.map(|h| {
            vec![Hub {
                kind: "WebSub",
                url: h.to_string(),
            }]
        }),
        items: Vec::new(),
    };
    let mut out = serde_json::to_vec_pretty(&feed).expect("JSON feed serialises");
    out.push(b'\n');
    // `items` is the last member: its empty array is the last `[]`.
    let at = memchr::memmem::rfind(&out, b"[]").expect("an items array") + 1;
    (out, at)
}

/// How `serde_json` lays out a non-empty `items` array at its depth (two spaces per
/// level): the items' openings, the separator between them, the array's closing.
pub(super) const LAYOUT: (&[u8], &[u8], &[u8]) = (b"\n    ", b",\n    ", b"\n  ");

/// One item object, byte for byte as `serde_json` pretty-prints it inside a feed's
/// `items`: printed alone, then indented by the two levels it sits at (a raw line
/// break only occurs between tokens: in strings it is escaped).
pub fn fragment(doc: &FeedDoc, s: &StoredItem) -> Vec<u8> {
    let alone = serde_json::to_vec_pretty(&item(doc, s)).expect("JSON items serialise");
    let mut out = Vec::with_capacity(alone.len() + alone.len() / 8);
    for (i, line) in alone.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\n    ");
        }
        out.extend_from_slice(line);
    }
    out
}

fn item<'a>(doc: &'a FeedDoc, s: &'a StoredItem) -> JsonItem<'a> {
    let it = &s.item;
    JsonItem {
        id: &s.published_id,
        url: it.url.as_ref().map(|u| u.as_str()),
        title: &it.title,
        content_text: it.content_html.is_none().then_some(it.summary.as_str()),
        content_html: it.content_html.as_deref(),
        summary: &it.summary,
        date_published: it
            .published
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        date_modified: it
            .updated
            .map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        authors: if !it.authors.is_empty() {
            it.authors
                .iter()
                .map(|a| Author {
                    name: Cow::Owned(super::split_author(a).0),
                })
                .collect()
        } else if doc.is_partner(&it.source) {
            vec![Author {
                name: Cow::Borrowed(doc.source_title(&it.source)),
            }]
        } else {
            Vec::new()
        },
        tags: &it.tags,
        language: it.language.as_deref(),
        _feedwerk: Extension {
            source: it.source.as_str(),
            source_title: doc
                .source(&it.source)
                .map(|s| s.title.as_str())
                .unwrap_or_default(),
            also_at: s
                .also_at
                .iter()
                .map(|a| AlsoAtJson {
                    source: a.source.as_str(),
                    source_title: &a.source_title,
                    title: &a.title,
                    url: a.url.as_ref().map(|u| u.as_str()),
                })
                .collect(),
        },
    }
}
