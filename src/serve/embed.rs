//! `/embed`: the partner news list, assembled per request from the entries the
//! publish stage pre-rendered for each channel. Only the query (how many items, which
//! channel) is read here; the markup is `render::embed`'s and the validators are the
//! catalog's, so the answer is conditional like every other document.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request};
use axum::response::Response;

use super::{bad_request, choose, respond, AppState};
use crate::catalog::Rendered;
use crate::render::embed;

/// What `/embed` was asked for, validated.
#[derive(Debug, PartialEq)]
struct EmbedQuery {
    n: usize,
    channel: String,
}

/// Parses `n` (1 to [`embed::MAX_ITEMS`], default 5) and `channel` (default `all`).
/// Repeated or malformed parameters are errors; unknown ones are ignored.
fn embed_query(query: Option<&str>) -> Result<EmbedQuery, String> {
    let mut n: Option<usize> = None;
    let mut channel: Option<String> = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "n" => {
                if n.is_some() {
                    return Err("`n` given twice".into());
                }
                let parsed = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=embed::MAX_ITEMS).contains(n))
                    .ok_or_else(|| {
                        format!("`n` must be a number from 1 to {}", embed::MAX_ITEMS)
                    })?;
                n = Some(parsed);
            }
            "channel" => {
                if channel.is_some() {
                    return Err("`channel` given twice".into());
                }
                channel = Some(v.into_owned());
            }
            _ => {}
        }
    }
    Ok(EmbedQuery {
        n: n.unwrap_or(5),
        channel: channel.unwrap_or_else(|| "all".into()),
    })
}

pub(super) async fn serve(State(state): State<AppState>, req: Request<Body>) -> Response {
    let q = match embed_query(req.uri().query()) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    let catalog = state.catalog.load();
    let Some(list) = catalog.embed(&q.channel) else {
        return bad_request(format!(
            "unknown channel `{}` (use `all`, `sources/<id>`, `tags/<tag>`, `lang/<code>` or `channels/<id>`)",
            q.channel
        ));
    };
    let items = &list.items[..q.n.min(list.items.len())];
    let body = embed::page(&list.title, &list.language, items);
    let doc = Rendered::new(
        "embed".into(),
        "text/html; charset=utf-8",
        "public, max-age=300",
        body.into(),
        format!("\"{}-{}\"", list.hash, q.n),
        list.last_modified,
    );
    let choice = choose(&doc, req.headers());
    let head = req.method() == Method::HEAD;
    let len = doc.body.len() as u64;
    let mut resp = respond(&doc, &choice, (!head).then(|| doc.body.clone()), len).map(Body::new);
    let h = resp.headers_mut();
    // Meant to be framed by any partner site; nothing in it may run or load scripts.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors *",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_query_is_validated() {
        assert_eq!(
            embed_query(None).unwrap(),
            EmbedQuery {
                n: 5,
                channel: "all".into()
            }
        );
        assert_eq!(
            embed_query(Some("n=3&channel=sources%2Fefus")).unwrap(),
            EmbedQuery {
                n: 3,
                channel: "sources/efus".into()
            }
        );
        for bad in [
            "n=0",
            "n=51",
            "n=-1",
            "n=abc",
            "n=",
            "n=1&n=2",
            "channel=a&channel=b",
        ] {
            assert!(embed_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
