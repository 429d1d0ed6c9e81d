//! HTTP: serves the published catalog from memory with validators, conditional GET,
//! HEAD and precompressed variants. No directory listing and no file system access per
//! request: a path is either in the catalog or a plain 404.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::publish::{Rendered, SharedCatalog};

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    pub catalog: SharedCatalog,
}

/// The router; tests drive it with or without a socket.
pub fn app(state: AppState) -> Router {
    Router::new().fallback(serve_catalog).with_state(state)
}

async fn serve_catalog(State(state): State<AppState>, req: Request<Body>) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "method not allowed\n",
        )
            .into_response();
    }
    let path = req.uri().path();
    let key = match path.strip_prefix('/') {
        Some("") => "index.html".to_owned(),
        Some(p) if p.ends_with('/') => format!("{p}index.html"),
        Some(p) => p.to_owned(),
        None => return not_found(),
    };
    let catalog = state.catalog.load();
    match catalog.get(&key) {
        Some(doc) => respond(doc, req.headers(), req.method() == Method::HEAD),
        None => not_found(),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 Not Found\n",
    )
        .into_response()
}

/// Picks the best encoding the client accepts: brotli, then gzip, then identity.
fn choose_encoding(headers: &HeaderMap, doc: &Rendered) -> Option<(&'static str, bytes::Bytes)> {
    let accept = headers.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
    let accepts = |name: &str| {
        accept.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            coding.eq_ignore_ascii_case(name) && !q_zero
        })
    };
    if let Some(b) = doc.brotli.as_ref().filter(|_| accepts("br")) {
        return Some(("br", b.clone()));
    }
    if let Some(g) = doc.gzip.as_ref().filter(|_| accepts("gzip")) {
        return Some(("gzip", g.clone()));
    }
    None
}

/// `If-None-Match` matching with weak comparison (RFC 9110 13.1.2), lists and `*`.
fn etag_matches(header_value: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = strip(etag);
    header_value
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

fn respond(doc: &Rendered, headers: &HeaderMap, head: bool) -> Response {
    let encoding = choose_encoding(headers, doc);
    let (etag, body) = match &encoding {
        Some((name, bytes)) => (
            format!(
                "{}-{}\"",
                doc.etag.trim_end_matches('"'),
                if *name == "br" { "br" } else { "gz" }
            ),
            bytes.clone(),
        ),
        None => (doc.etag.clone(), doc.body.clone()),
    };
    let last_modified = httpdate::fmt_http_date(std::time::SystemTime::from(doc.last_modified));
    let not_modified = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(inm) => etag_matches(inm, &etag),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            // HTTP dates have whole seconds; compare at that precision or a client
            // echoing our own Last-Modified would never get a 304.
            .is_some_and(|since| doc.last_modified.timestamp() <= httpdate_secs(since)),
    };
    let mut b = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, last_modified)
        .header(header::CACHE_CONTROL, doc.cache_control)
        .header(header::VARY, "Accept-Encoding");
    if doc.content_type.contains("xml") || doc.content_type.contains("json") {
        b = b.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    }
    if not_modified {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response");
    }
    b = b
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static(doc.content_type),
        )
        .header(header::CONTENT_LENGTH, body.len());
    if let Some((name, _)) = encoding {
        b = b.header(header::CONTENT_ENCODING, name);
    }
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    b.status(StatusCode::OK).body(body).expect("valid response")
}

fn httpdate_secs(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_weak_and_star() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\", \"x\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
