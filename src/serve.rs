//! HTTP: serves the published catalog from memory with validators, conditional GET,
//! HEAD and precompressed variants, plus `/embed` (the partner news list, assembled
//! from pre-rendered entries). No directory listing and no file system access per
//! request: a path is either in the catalog or a plain 404, so no path can escape it.
//!
//! [`app`] builds the router; other modules add their routes to it with `.route(…)`
//! before the catalog fallback catches everything else.
//!
//! Two operational routes sit beside the catalog: `/healthz` (200, or 503 with the
//! reason) and `/metrics` (Prometheus text, OpenMetrics on request). Every answer is
//! counted by path and status; the numbers themselves live in [`crate::metrics`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::Telemetry;
use crate::publish::{HttpFields, Rendered, SharedCatalog};
use crate::render::embed;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    pub catalog: SharedCatalog,
    /// Metrics and health, shared with the daemon's working loop.
    pub telemetry: Arc<Telemetry>,
}

impl AppState {
    pub fn new(catalog: SharedCatalog) -> AppState {
        AppState {
            catalog,
            telemetry: Arc::default(),
        }
    }
}

/// The router; tests drive it with or without a socket.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/embed", get(serve_embed))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(serve_catalog)
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state)
}

/// Counts every answer by path and status. A 404 or 405 is counted under "other": only
/// paths we actually serve get a series of their own.
async fn count_request(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    let known = status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED;
    state.telemetry.http_request(&path, known, status.as_u16());
    resp
}

async fn healthz(State(state): State<AppState>) -> Response {
    let (status, text) = match state.telemetry.check() {
        Ok(summary) => (StatusCode::OK, summary),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        crate::metrics::OPENMETRICS_TEXT
    } else {
        crate::metrics::PROMETHEUS_TEXT
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.telemetry.encode(openmetrics),
    )
        .into_response()
}

async fn serve_catalog(State(state): State<AppState>, req: Request<Body>) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed();
    }
    let path = req.uri().path();
    let key: std::borrow::Cow<str> = match path.strip_prefix('/') {
        Some("") => "index.html".into(),
        Some(p) if p.ends_with('/') => format!("{p}index.html").into(),
        Some(p) => p.into(),
        None => return not_found(),
    };
    let catalog = state.catalog.load();
    match catalog.get(&key) {
        Some(doc) => respond(doc, req.headers(), req.method() == Method::HEAD),
        None => not_found(),
    }
}

fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::ALLOW, "GET, HEAD"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "405 Method Not Allowed\n",
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 Not Found\n",
    )
        .into_response()
}

fn bad_request(why: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("400 Bad Request: {why}\n"),
    )
        .into_response()
}

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

async fn serve_embed(State(state): State<AppState>, req: Request<Body>) -> Response {
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
    let doc = Rendered {
        path: "embed".into(),
        content_type: "text/html; charset=utf-8",
        body: body.into(),
        gzip: None,
        brotli: None,
        etag: format!("\"{}-{}\"", list.hash, q.n),
        last_modified: list.last_modified,
        cache_control: "public, max-age=300",
        http: HttpFields::new(&format!("\"{}-{}\"", list.hash, q.n), list.last_modified),
    };
    let mut resp = respond(&doc, req.headers(), req.method() == Method::HEAD);
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
    fn strip(t: &str) -> &str {
        t.trim().trim_start_matches("W/")
    }
    let ours = strip(etag);
    header_value
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

/// Feeds, JSON and the embed script may be read by scripts on any partner origin.
fn cross_origin(content_type: &str) -> bool {
    content_type.contains("xml")
        || content_type.contains("json")
        || content_type.contains("javascript")
}

/// RSS and Atom documents are XML, but browsers download (or show as text) what comes
/// as `application/rss+xml`/`application/atom+xml` instead of applying the feed's XSLT.
fn is_feed_type(content_type: &str) -> bool {
    content_type.starts_with("application/rss+xml")
        || content_type.starts_with("application/atom+xml")
}

/// A browser navigating to a feed asks for `text/html` and names no feed type; feed
/// readers name the feed types or `*/*`. The browser gets the same bytes labelled
/// `application/xml`, which it renders through the `<?xml-stylesheet?>`.
fn wants_browser_view(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let accept = accept.to_ascii_lowercase();
    accept.contains("text/html") && !accept.contains("rss+xml") && !accept.contains("atom+xml")
}

fn respond(doc: &Rendered, headers: &HeaderMap, head: bool) -> Response {
    let encoding = choose_encoding(headers, doc);
    let feed = is_feed_type(doc.content_type);
    let browser_view = feed && wants_browser_view(headers);
    let variant = match &encoding {
        None => 0,
        Some(("gzip", _)) => 2,
        Some(_) => 4,
    } + usize::from(browser_view);
    let etag_bytes = doc.http.etags[variant].clone();
    let etag = std::str::from_utf8(&etag_bytes).expect("ETags are ASCII");
    let body = match &encoding {
        Some((_, bytes)) => bytes.clone(),
        None => doc.body.clone(),
    };
    let content_type = if browser_view {
        "application/xml; charset=utf-8"
    } else {
        doc.content_type
    };
    // RFC 9110 13.1.3: If-Modified-Since is ignored when If-None-Match is present.
    let not_modified = match headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(inm) => etag_matches(inm, etag),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            // HTTP dates have whole seconds; compare at that precision or a client
            // echoing our own Last-Modified would never get a 304.
            .is_some_and(|since| doc.last_modified.timestamp() <= httpdate_secs(since)),
    };
    let header_value = |b: &bytes::Bytes| {
        HeaderValue::from_maybe_shared(b.clone()).expect("made from an ETag or HTTP date")
    };
    let mut b = Response::builder()
        .header(header::ETAG, header_value(&etag_bytes))
        .header(header::LAST_MODIFIED, header_value(&doc.http.last_modified))
        .header(header::CACHE_CONTROL, doc.cache_control)
        .header(
            header::VARY,
            if feed {
                "Accept-Encoding, Accept"
            } else {
                "Accept-Encoding"
            },
        );
    if cross_origin(doc.content_type) {
        b = b
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header(header::ACCESS_CONTROL_EXPOSE_HEADERS, "ETag, Last-Modified");
    }
    if not_modified {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response");
    }
    b = b
        .header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
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
