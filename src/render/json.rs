//! JSON Feed 1.1 (https://jsonfeed.org/version/1.1): plain serde structs. Provenance goes
//! into the `_feedwerk` extension object, as the spec's extension rules ask.

use serde::Serialize;

use super::FeedDoc;
use crate::model::Format;

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
    authors: Vec<Author>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hubs: Option<Vec<Hub>>,
    items: Vec<JsonItem>,
}

#[derive(Serialize)]
struct Hub {
    #[serde(rename = "type")]
    kind: &'static str,
    url: String,
}

#[derive(Serialize)]
struct JsonItem {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_text: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    summary: String,
    date_published: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_modified: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    _feedwerk: Extension,
}

#[derive(Serialize)]
struct Author {
    name: String,
}

#[derive(Serialize)]
struct Extension {
    source: String,
    source_title: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also_at: Vec<AlsoAtJson>,
}

#[derive(Serialize)]
struct AlsoAtJson {
    source: String,
    source_title: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

pub fn render(doc: &FeedDoc) -> Vec<u8> {
    let items = doc
        .items
        .iter()
        .map(|s| {
            let it = &s.item;
            JsonItem {
                id: s.published_id.clone(),
                url: it.url.as_ref().map(|u| u.to_string()),
                title: it.title.clone(),
                content_text: it.content_html.is_none().then(|| it.summary.clone()),
                content_html: it.content_html.clone(),
                summary: it.summary.clone(),
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
                            name: super::split_author(a).0,
                        })
                        .collect()
                } else if doc.is_partner(&it.source) {
                    vec![Author {
                        name: doc.source_title(&it.source).to_owned(),
                    }]
                } else {
                    Vec::new()
                },
                tags: it.tags.clone(),
                language: it.language.clone(),
                _feedwerk: Extension {
                    source: it.source.to_string(),
                    source_title: doc
                        .source(&it.source)
                        .map(|s| s.title.clone())
                        .unwrap_or_default(),
                    also_at: s
                        .also_at
                        .iter()
                        .map(|a| AlsoAtJson {
                            source: a.source.to_string(),
                            source_title: a.source_title.clone(),
                            title: a.title.clone(),
                            url: a.url.as_ref().map(|u| u.to_string()),
                        })
                        .collect(),
                },
            }
        })
        .collect();
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
            .map(|a| Author { name: a.clone() })
            .collect(),
        hubs: doc.websub_hub.map(|h| {
            vec![Hub {
                kind: "WebSub",
                url: h.to_string(),
            }]
        }),
        items,
    };
    let mut out = serde_json::to_vec_pretty(&feed).expect("JSON feed serialises");
    out.push(b'\n');
    out
}
