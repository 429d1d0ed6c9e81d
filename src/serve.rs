//! HTTP: serves the published catalog with validators, conditional GET, HEAD and
//! compressed variants — precompressed for front-door documents, made on the first
//! request and cached ([`on_request`]) for the narrow ones — plus `/embed` (the
//! partner news list, assembled from pre-rendered entries). No directory listing and
//! no file system access chosen by the request: a path is either in the catalog or a
//! plain 404, so no path can escape it.
//! Subscription documents are answered from memory; sealed archive pages (immutable,
//! and the bulk of what grows with the store) from the files they were published to.
//!
//! [`app`] builds the router; other modules add their routes to it with `.route(…)`
//! before the catalog fallback catches everything else. [`start`] runs the server: one
//! thread per core, each with its own single-threaded runtime and HTTP/1.1 connections,
//! where a GET or HEAD of a catalog path is answered without going through the router.
//!
//! Two operational routes sit beside the catalog: `/healthz` (200, or 503 with the
//! reason) and `/metrics` (Prometheus text, OpenMetrics on request). Every answer is
//! counted by path and status; the numbers themselves live in [`crate::metrics`].
//!
//! Only what these routes need is accepted: `GET` and `HEAD` (else `405` with
//! `Allow`), no request body (`413`, not read), a target of at most
//! `server.max_uri_bytes` (`414`). How long a connection may take, how many may be
//! open and which one gives way is [`conn`]'s.

mod conn;
mod embed;
mod on_request;

pub use conn::bind;

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{self, header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::future::{self, Either};
use tokio_util::sync::CancellationToken;

use crate::catalog::{Rendered, SharedCatalog, Stamp};
use crate::config::ServerLimits;
use crate::metrics::Telemetry;
use crate::publish::Coding;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    pub catalog: SharedCatalog,
    /// Metrics and health, shared with the daemon's working loop.
    pub telemetry: Arc<Telemetry>,
    /// Variants of narrow documents compressed on request.
    pub variants: Arc<on_request::Variants>,
}

impl AppState {
    pub fn new(catalog: SharedCatalog) -> AppState {
        AppState::with_telemetry(catalog, Arc::default())
    }

    /// State sharing the daemon's `telemetry`.
    pub fn with_telemetry(catalog: SharedCatalog, telemetry: Arc<Telemetry>) -> AppState {
        AppState {
            catalog,
            telemetry,
            variants: Arc::default(),
        }
    }
}

/// The paths of [`app`]'s own routes; every other path is the catalog's.
const ROUTES: [&str; 3] = ["/embed", "/healthz", "/metrics"];

/// The router; tests drive it with or without a socket.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/embed", get(embed::serve))
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
    // The router's middleware counts this answer.
    let head = req.method() == Method::HEAD;
    match from_catalog(&state, req.uri().path(), req.headers(), head, false) {
        Either::Left(r) => r,
        Either::Right(f) => f.await.unwrap_or_else(|e| match e {}),
    }
    .map(Body::new)
}

/// The catalog key of a request path: `/` and `dir/` mean their `index.html`.
fn catalog_key(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    Some(match path.strip_prefix('/')? {
        "" => "index.html".into(),
        p if p.ends_with('/') => format!("{p}index.html").into(),
        p => p.into(),
    })
}

type Answer = Result<http::Response<ServeBody>, Infallible>;
type BoxAnswer = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Answers a GET or HEAD of `path` from the catalog: at once when the document is in
/// memory (or the answer is a 304), else by a future that reads the file. With
/// `count`, the answer is counted here.
fn from_catalog(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
    head: bool,
    count: bool,
) -> Either<http::Response<ServeBody>, BoxAnswer> {
    let catalog = state.catalog.guard();
    let Some(doc) = catalog_key(path).and_then(|k| catalog.get(&k)) else {
        if count {
            state
                .telemetry
                .http_request(path, false, StatusCode::NOT_FOUND.as_u16());
        }
        return Either::Left(not_found().map(ServeBody::Router));
    };
    let choice = choose_with(doc, headers, true);
    if let Some(coding) = missing_variant(doc, &choice) {
        return compressed_on_request(state, path, headers, doc, (&choice, coding), head, count);
    }
    let Some(disk) = doc.on_disk.as_ref().filter(|_| !choice.not_modified) else {
        let body = match choice.encoding {
            Encoding::Identity => &doc.body,
            Encoding::Gzip => doc.gzip.as_ref().unwrap_or(&doc.body),
            Encoding::Brotli => doc.brotli.as_ref().unwrap_or(&doc.body),
        };
        let len = body.len() as u64;
        let resp = respond(doc, &choice, (!head).then(|| body.clone()), len);
        if count {
            count_doc(state, path, doc, resp.status());
        }
        return Either::Left(resp);
    };
    let Some(stamp) = disk[choice.encoding as usize].clone() else {
        unreachable!("choose only picks variants that exist");
    };
    if head {
        let resp = respond(doc, &choice, None, stamp.len);
        if count {
            count_doc(state, path, doc, resp.status());
        }
        return Either::Left(resp);
    }
    let (state, doc, headers) = (state.clone(), doc.clone(), headers.clone());
    let path = path.to_owned();
    Either::Right(Box::pin(async move {
        let resp = from_disk(&doc, &choice, stamp, &headers).await;
        if count {
            count_doc(&state, &path, &doc, resp.status());
        }
        Ok(resp)
    }))
}

/// The coding `choice` asks for when `doc` has no such variant ready (published or
/// cached) and it must be made: a narrow document's first request for it.
fn missing_variant(doc: &Rendered, choice: &Choice) -> Option<Coding> {
    if choice.not_modified || has_variant(doc, choice.encoding) {
        return None;
    }
    match choice.encoding {
        Encoding::Identity => None,
        Encoding::Gzip => Some(Coding::Gzip),
        Encoding::Brotli => Some(Coding::Brotli),
    }
}

/// Answers with a variant made on request: from the cache when it holds it, else by a
/// future that reads the identity bytes (from memory, or from the file of a sealed
/// document) and compresses them on the blocking pool, so the connection's thread keeps
/// serving others meanwhile.
fn compressed_on_request(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
    doc: &Arc<Rendered>,
    (choice, coding): (&Choice, Coding),
    head: bool,
    count: bool,
) -> Either<http::Response<ServeBody>, BoxAnswer> {
    // The variant's own ETag (not its browser view's): content hash and coding.
    let key = doc.http.etags[choice.encoding as usize * 2].clone();
    if let Some(body) = state.variants.get(&key) {
        let len = body.len() as u64;
        let resp = respond(doc, choice, (!head).then_some(body), len);
        if count {
            count_doc(state, path, doc, resp.status());
        }
        return Either::Left(resp);
    }
    let (state, doc, choice, path) = (state.clone(), doc.clone(), *choice, path.to_owned());
    let headers = headers.clone();
    Either::Right(Box::pin(async move {
        let resp = make_variant(&state, &doc, &headers, &choice, key, coding, head).await;
        if count {
            count_doc(&state, &path, &doc, resp.status());
        }
        Ok(resp)
    }))
}

async fn make_variant(
    state: &AppState,
    doc: &Arc<Rendered>,
    headers: &HeaderMap,
    choice: &Choice,
    key: HeaderValue,
    coding: Coding,
    head: bool,
) -> http::Response<ServeBody> {
    let identity = match doc.on_disk.as_ref().map(|d| d[0].clone()) {
        None => doc.body.clone(),
        Some(stamp) => {
            let Some(stamp) = stamp else {
                unreachable!("a document on disk has its identity file");
            };
            let s = stamp.clone();
            match tokio::task::spawn_blocking(move || read_stamped(&s)).await {
                Ok(Ok(Some(body))) => body,
                // Replaced or edited since it was published: answered as it is now,
                // uncompressed, with validators made from its bytes (see `from_disk`).
                Ok(Ok(None)) => {
                    let identity = Choice {
                        encoding: Encoding::Identity,
                        ..*choice
                    };
                    return from_disk(doc, &identity, stamp, headers).await;
                }
                Ok(Err(e)) => return unreadable(doc, &e),
                Err(e) => return unreadable(doc, &std::io::Error::other(e)),
            }
        }
    };
    let variants = state.variants.clone();
    let made = tokio::task::spawn_blocking(move || variants.make(key, &identity, coding)).await;
    match made {
        Ok(body) => {
            let len = body.len() as u64;
            respond(doc, choice, (!head).then_some(body), len)
        }
        Err(e) => unreadable(doc, &std::io::Error::other(e)),
    }
}

/// Counts an answer about a catalog document: through the document's own counters when
/// the request named it exactly (no lock, no allocation), else by path.
fn count_doc(state: &AppState, path: &str, doc: &Rendered, status: StatusCode) {
    if path.strip_prefix('/') == Some(doc.path.as_str()) {
        let counters = doc
            .http
            .counters
            .get_or_init(|| state.telemetry.path_counters(path));
        if counters.count(status.as_u16()) {
            return;
        }
    }
    state.telemetry.http_request(path, true, status.as_u16());
}

/// Reads the chosen variant of a document kept on disk. A file that is not the one
/// published (replaced or edited since: its size or mtime differ) is answered from its
/// identity bytes with validators made from them, never with the catalog's.
async fn from_disk(
    doc: &Rendered,
    choice: &Choice,
    stamp: Stamp,
    headers: &HeaderMap,
) -> http::Response<ServeBody> {
    let read = tokio::task::spawn_blocking(move || read_stamped(&stamp)).await;
    match read {
        Ok(Ok(Some(body))) => {
            let len = body.len() as u64;
            return respond(doc, choice, Some(body), len);
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => return unreadable(doc, &e),
        Err(e) => return unreadable(doc, &std::io::Error::other(e)),
    }
    let Some(identity) = doc.on_disk.as_ref().and_then(|d| d[0].clone()) else {
        unreachable!("a document on disk has its identity file");
    };
    let file = identity.path.clone();
    let read = tokio::task::spawn_blocking(move || std::fs::read(&file)).await;
    let body = match read {
        Ok(Ok(b)) => Bytes::from(b),
        Ok(Err(e)) => return unreadable(doc, &e),
        Err(e) => return unreadable(doc, &std::io::Error::other(e)),
    };
    let hash = crate::catalog::content_hash(&body);
    let etag = format!("\"{hash}\"");
    tracing::warn!(path = %doc.path, "published file changed on disk since it was published; serving it as it is now");
    let last_modified = if etag == doc.etag {
        doc.last_modified
    } else {
        std::fs::metadata(&identity.path)
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or(doc.last_modified)
    };
    let now = Rendered::new(
        doc.path.clone(),
        doc.content_type,
        doc.cache_control,
        body,
        etag,
        last_modified,
    );
    let choice = choose(&now, headers);
    let len = now.body.len() as u64;
    respond(
        &now,
        &choice,
        (!choice.not_modified).then(|| now.body.clone()),
        len,
    )
}

/// The file's bytes if it is still the one stamped (same size and mtime), else `None`.
fn read_stamped(stamp: &Stamp) -> std::io::Result<Option<Bytes>> {
    let mut f = std::fs::File::open(&stamp.path)?;
    let meta = f.metadata()?;
    if meta.len() != stamp.len || meta.modified().ok() != Some(stamp.modified) {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(stamp.len as usize);
    f.read_to_end(&mut buf)?;
    Ok((buf.len() as u64 == stamp.len).then(|| Bytes::from(buf)))
}

fn unreadable(doc: &Rendered, e: &std::io::Error) -> http::Response<ServeBody> {
    tracing::error!(path = %doc.path, error = %e, "cannot read a published file");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "500 Internal Server Error: a published file cannot be read\n",
    )
        .into_response()
        .map(ServeBody::Router)
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
    plain(StatusCode::NOT_FOUND, "404 Not Found\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
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

/// Which representation of a document a request gets, decided from its headers alone.
#[derive(Debug, Clone, Copy)]
struct Choice {
    encoding: Encoding,
    /// A browser navigating to a feed: same bytes, labelled `application/xml`.
    browser_view: bool,
    not_modified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity = 0,
    Gzip = 1,
    Brotli = 2,
}

impl Encoding {
    fn name(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// Which compressed variants of `doc` are ready: in memory, or as files beside it.
fn has_variant(doc: &Rendered, e: Encoding) -> bool {
    match (&doc.on_disk, e) {
        (_, Encoding::Identity) => true,
        (Some(files), e) => files[e as usize].is_some(),
        (None, Encoding::Gzip) => doc.gzip.is_some(),
        (None, Encoding::Brotli) => doc.brotli.is_some(),
    }
}

/// Can a variant of `doc` be made on request? A text document of more than 256 bytes
/// (what publishing precompresses, too) without ready variants.
fn compressible_on_request(doc: &Rendered) -> bool {
    let len = match &doc.on_disk {
        Some(files) => files[0].as_ref().map_or(0, |s| s.len),
        None => doc.body.len() as u64,
    };
    len > 256 && crate::publish::compressible(doc.content_type)
}

/// The choice for a document that has only the variants it holds (see [`choose_with`]).
fn choose(doc: &Rendered, headers: &HeaderMap) -> Choice {
    choose_with(doc, headers, false)
}

/// Which representation of `doc` the request gets; with `on_request`, a compressed
/// variant the document does not hold counts as available (it is made when needed).
fn choose_with(doc: &Rendered, headers: &HeaderMap, on_request: bool) -> Choice {
    let on_request = on_request && compressible_on_request(doc);
    let encoding = choose_encoding(headers, doc, on_request);
    let browser_view = is_feed_type(doc.content_type) && wants_browser_view(headers);
    let etag = &doc.http.etags[encoding as usize * 2 + usize::from(browser_view)];
    // RFC 9110 13.1.3: If-Modified-Since is ignored when If-None-Match is present.
    let not_modified = match headers.get(header::IF_NONE_MATCH) {
        Some(inm) => etag_matches(inm.as_bytes(), etag.as_bytes()),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            // HTTP dates have whole seconds; compare at that precision or a client
            // echoing our own Last-Modified would never get a 304.
            .is_some_and(|since| doc.last_modified.timestamp() <= httpdate_secs(since)),
    };
    Choice {
        encoding,
        browser_view,
        not_modified,
    }
}

/// Picks the best encoding the client accepts: brotli, then gzip, then identity. With
/// `on_request`, also one the document does not hold yet.
fn choose_encoding(headers: &HeaderMap, doc: &Rendered, on_request: bool) -> Encoding {
    let Some(accept) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return Encoding::Identity;
    };
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
    let available = |e: Encoding| on_request || has_variant(doc, e);
    if available(Encoding::Brotli) && accepts("br") {
        Encoding::Brotli
    } else if available(Encoding::Gzip) && accepts("gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// `If-None-Match` matching with weak comparison (RFC 9110 13.1.2), lists and `*`.
/// Works on the header's bytes: the common case, a client echoing our ETag, is one
/// comparison.
fn etag_matches(header_value: &[u8], etag: &[u8]) -> bool {
    fn strip(t: &[u8]) -> &[u8] {
        let t = t.trim_ascii();
        t.strip_prefix(b"W/").unwrap_or(t)
    }
    if header_value == etag {
        return true;
    }
    let ours = strip(etag);
    header_value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii() == b"*" || strip(t) == ours)
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

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A browser navigating to a feed asks for `text/html` and names no feed type; feed
/// readers name the feed types or `*/*`. The browser gets the same bytes labelled
/// `application/xml`, which it renders through the `<?xml-stylesheet?>`.
fn wants_browser_view(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).map(HeaderValue::as_bytes) else {
        return false;
    };
    contains_ignore_case(accept, b"text/html")
        && !contains_ignore_case(accept, b"rss+xml")
        && !contains_ignore_case(accept, b"atom+xml")
}

/// The answer for `doc` as `choice` says: a 304, or a 200 with `body` (`None` for HEAD,
/// whose `Content-Length` is `len`). Every header value is either static or made once
/// per publish; hyper adds `Content-Length` itself when there is a body.
fn respond(
    doc: &Rendered,
    choice: &Choice,
    body: Option<Bytes>,
    len: u64,
) -> http::Response<ServeBody> {
    let feed = is_feed_type(doc.content_type);
    let variant = choice.encoding as usize * 2 + usize::from(choice.browser_view);
    let mut h = HeaderMap::with_capacity(12);
    h.insert(header::ETAG, doc.http.etags[variant].clone());
    h.insert(header::LAST_MODIFIED, doc.http.last_modified.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(doc.cache_control),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static(if feed {
            "Accept-Encoding, Accept"
        } else {
            "Accept-Encoding"
        }),
    );
    if cross_origin(doc.content_type) {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("ETag, Last-Modified"),
        );
    }
    let mut resp = http::Response::new(ServeBody::Bytes(None));
    if choice.not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        *resp.headers_mut() = h;
        return resp;
    }
    let content_type = if choice.browser_view {
        "application/xml; charset=utf-8"
    } else {
        doc.content_type
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(name) = choice.encoding.name() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
    }
    match body {
        Some(b) => *resp.body_mut() = ServeBody::Bytes(Some(b)),
        None => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    *resp.headers_mut() = h;
    resp
}

/// A response body: bytes held by the catalog (or read from a published file), sent
/// as one frame without boxing, or whatever the router answered.
pub enum ServeBody {
    Bytes(Option<Bytes>),
    Router(Body),
}

impl http_body::Body for ServeBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.get_mut() {
            ServeBody::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            ServeBody::Router(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ServeBody::Bytes(b) => b.is_none(),
            ServeBody::Router(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            ServeBody::Bytes(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            ServeBody::Router(b) => b.size_hint(),
        }
    }
}

/// The per-connection service: a GET or HEAD of a catalog path (the bulk of a feed
/// server's traffic) is answered here, with no router, middleware, boxing or body
/// conversion in between; everything else goes to [`app`]'s router.
#[derive(Clone)]
struct Connection {
    state: AppState,
    router: Router,
    max_uri_bytes: usize,
    /// The connection's place in the registry, told when an answer starts and ends.
    slot: Option<Arc<conn::Slot>>,
}

impl Connection {
    /// The service for one accepted connection.
    fn on(&self, slot: Arc<conn::Slot>) -> Connection {
        Connection {
            slot: Some(slot),
            ..self.clone()
        }
    }

    /// The answer for a request these routes never take: `405` for a method other
    /// than GET and HEAD, `413` for a body (unread: the connection closes after the
    /// answer), `414` for a target over `max_uri_bytes`.
    fn refuse(&self, req: &Request<hyper::body::Incoming>) -> Option<http::Response<ServeBody>> {
        let method_ok = req.method() == Method::GET || req.method() == Method::HEAD;
        let has_body = !http_body::Body::is_end_stream(req.body());
        let too_long = req
            .uri()
            .path_and_query()
            .is_some_and(|pq| pq.as_str().len() > self.max_uri_bytes);
        if method_ok && !has_body && !too_long {
            return None;
        }
        let mut resp = if !method_ok {
            method_not_allowed()
        } else if has_body {
            plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Content Too Large: requests here have no body\n",
            )
        } else {
            plain(StatusCode::URI_TOO_LONG, "414 URI Too Long\n")
        };
        if has_body {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        self.state
            .telemetry
            .http_request(req.uri().path(), false, resp.status().as_u16());
        Some(resp.map(ServeBody::Router))
    }

    fn answer(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Either<future::Ready<Answer>, BoxAnswer> {
        if let Some(refusal) = self.refuse(&req) {
            return Either::Left(future::ready(Ok(refusal)));
        }
        let head = req.method() == Method::HEAD;
        let path = req.uri().path();
        if !ROUTES.contains(&path) {
            return match from_catalog(&self.state, path, req.headers(), head, true) {
                Either::Left(r) => Either::Left(future::ready(Ok(r))),
                Either::Right(f) => Either::Right(f),
            };
        }
        let mut router = self.router.clone();
        let answer = tower_service::Service::call(&mut router, req);
        Either::Right(Box::pin(async move {
            let resp = answer.await.unwrap_or_else(|e| match e {});
            Ok(resp.map(ServeBody::Router))
        }))
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Connection {
    type Response = http::Response<Answered>;
    type Error = Infallible;
    type Future = Tracked;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(slot) = &self.slot {
            slot.answering();
        }
        Tracked {
            answer: self.answer(req),
            slot: self.slot.clone(),
        }
    }
}

/// An answer on its way to hyper, its body tied to the connection's slot.
struct Tracked {
    answer: Either<future::Ready<Answer>, BoxAnswer>,
    slot: Option<Arc<conn::Slot>>,
}

impl Future for Tracked {
    type Output = Result<http::Response<Answered>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Poll::Ready(Ok(resp)) = Pin::new(&mut this.answer).poll(cx) else {
            return Poll::Pending;
        };
        let slot = this.slot.take();
        Poll::Ready(Ok(resp.map(|body| Answered { body, slot })))
    }
}

/// A response body that tells the connection when it is done: hyper drops it after
/// taking its last frame, and from then on the connection counts as idle once the
/// bytes are out.
pub struct Answered {
    body: ServeBody,
    slot: Option<Arc<conn::Slot>>,
}

impl Drop for Answered {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.answered();
        }
    }
}

impl http_body::Body for Answered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The running server's threads.
pub struct Server {
    stopped: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl Server {
    /// Resolves once every server thread has ended: after `shutdown` was cancelled and
    /// the connections open then were answered and closed.
    pub async fn stopped(self) {
        for s in self.stopped {
            let _ = s.await;
        }
    }
}

/// Starts serving `state` on `listener` under `limits`: one thread per core, each
/// running its own single-threaded runtime that accepts from the shared listening
/// socket and serves its connections (HTTP/1.1, keep-alive). Like nginx's worker
/// processes, a connection stays on one core; no request pays for waking another
/// thread. The cap on open connections is shared by all threads. Until `shutdown` is
/// cancelled; then open connections finish their request in flight and close.
pub fn start(
    listener: std::net::TcpListener,
    state: AppState,
    limits: &ServerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<Server> {
    listener.set_nonblocking(true)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limits = Arc::new(conn::Limits::resolve(limits));
    let registry = conn::Registry::new(limits.max_connections, state.telemetry.clone());
    let router = app(state.clone());
    let mut stopped = Vec::with_capacity(threads);
    for i in 0..threads {
        let listener = listener.try_clone()?;
        let service = Connection {
            state: state.clone(),
            router: router.clone(),
            max_uri_bytes: limits.max_uri_bytes,
            slot: None,
        };
        let (registry, limits) = (registry.clone(), limits.clone());
        let shutdown = shutdown.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("feedwerk-http-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => conn::accept(l, service, registry, limits, shutdown).await,
                        Err(e) => tracing::error!(error = %e, "server thread cannot use the listening socket"),
                    }
                });
                let _ = done.send(());
            })?;
        stopped.push(rx);
    }
    Ok(Server { stopped })
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
        assert!(etag_matches(b"\"abc\"", b"\"abc\""));
        assert!(etag_matches(b"W/\"abc\", \"x\"", b"\"abc\""));
        assert!(etag_matches(b"\"x\" , W/\"abc\"", b"\"abc\""));
        assert!(etag_matches(b"*", b"\"abc\""));
        assert!(!etag_matches(b"\"abd\"", b"\"abc\""));
        assert!(!etag_matches(b"\"abc-gz\"", b"\"abc\""));
    }
}
