//! HTTP for partner sources: one shared client, conditional GET, limits enforced while
//! streaming, redirects followed by hand (so permanent moves and loops are seen), and
//! typed outcomes the scheduler can act on ("retry later" vs "gone").
//!
//! The fetcher does not decide encodings or parse: it reports the HTTP charset and the
//! bytes, and `source::decode` decides. It does not decide *when* to fetch either
//! (`schedule`), nor how many fetches run at once (`pipeline` holds the per-host and
//! global limits). reqwest types stay in this file.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use url::Url;

use crate::config::FetchConfig;

/// Validators remembered from the previous successful fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A successful response body and what HTTP said about it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the body came from, after redirects (the base for relative links).
    pub final_url: Url,
    /// The body after content decoding (gzip, deflate, brotli).
    pub body: Vec<u8>,
    pub charset: Option<String>,
    pub content_type: Option<String>,
    pub validators: Validators,
    /// Set when only permanent redirects (301/308) led here: the operator should update
    /// the configured URL.
    pub moved_permanently: Option<Url>,
    /// `Cache-Control: max-age` the server asked for, if any.
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum FetchOutcome {
    Fetched(Box<Fetched>),
    /// 304: the partner confirmed our copy. New validators, if it sent any.
    NotModified {
        max_age: Option<Duration>,
        validators: Validators,
        moved_permanently: Option<Url>,
    },
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum FetchError {
    #[error("{url}: no complete answer within {secs}s (timeout)")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: cannot connect: {message}")]
    Connect { url: String, message: String },
    #[error("{url}: HTTP {status}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{url}: gone (HTTP 410); polling stopped until the configured URL changes")]
    Gone { url: String },
    #[error("{url}: body larger than {limit} bytes (after decompression); cut off")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: redirect loop ({chain})")]
    RedirectLoop { url: String, chain: String },
    #[error("{url}: more than {max} redirects ({chain})")]
    TooManyRedirects {
        url: String,
        max: usize,
        chain: String,
    },
    #[error("{url}: redirect without a usable Location header")]
    BadRedirect { url: String },
    #[error("{url}: {message}")]
    Other { url: String, message: String },
}

impl FetchError {
    /// The server's requested pause (`Retry-After`), if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short status for `feedwerk sources` ("timeout", "HTTP 503", …).
    pub fn short(&self) -> String {
        match self {
            FetchError::Timeout { .. } => "timeout".into(),
            FetchError::Connect { .. } => "connect error".into(),
            FetchError::Status { status, .. } => format!("HTTP {status}"),
            FetchError::Gone { .. } => "HTTP 410 gone".into(),
            FetchError::TooLarge { .. } => "too large".into(),
            FetchError::RedirectLoop { .. } => "redirect loop".into(),
            FetchError::TooManyRedirects { .. } => "too many redirects".into(),
            FetchError::BadRedirect { .. } => "bad redirect".into(),
            FetchError::Other { .. } => "error".into(),
        }
    }
}

/// The HTTP clients for partner fetches: one for `http:` hops and one for `https:`
/// hops, which is built at the first `https:` hop (see [`Fetcher::client_for`]).
#[derive(Clone)]
pub struct Fetcher {
    /// For `http:` URLs: it never speaks TLS, so it is built without loading any root
    /// certificates.
    plain: reqwest::Client,
    /// For `https:` URLs, verifying servers against the system's root certificates.
    /// Building it reads and parses every certificate the system trusts
    /// (rustls-platform-verifier; about 19 M instructions here, the largest fixed cost
    /// of a run), which a configuration without an `https:` source never needs. Shared
    /// by clones; an error to build is kept and reported for every `https:` fetch.
    tls: Arc<OnceLock<Result<reqwest::Client, String>>>,
    user_agent: String,
    cfg: FetchConfig,
}

const ACCEPT: &str = "application/atom+xml, application/rss+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, text/html;q=0.5, */*;q=0.1";

impl Fetcher {
    pub fn new(cfg: &FetchConfig, user_agent: &str) -> Fetcher {
        let plain = Fetcher::builder(cfg, user_agent)
            // No roots: this client is only handed `http:` URLs (`client_for`).
            .tls_certs_only(std::iter::empty())
            .build()
            .expect("the HTTP client configuration is static and valid");
        Fetcher {
            plain,
            tls: Arc::new(OnceLock::new()),
            user_agent: user_agent.to_owned(),
            cfg: cfg.clone(),
        }
    }

    /// The settings both clients share.
    fn builder(cfg: &FetchConfig, user_agent: &str) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            // Redirects are followed in `fetch`, which needs to see each hop.
            .redirect(reqwest::redirect::Policy::none())
    }

    /// The client for one hop: the plain one for `http:`, else the verifying one,
    /// built now if this is the run's first `https:` hop.
    fn client_for(&self, url: &Url) -> Result<&reqwest::Client, FetchError> {
        if url.scheme() == "http" {
            return Ok(&self.plain);
        }
        self.tls
            .get_or_init(|| {
                Fetcher::builder(&self.cfg, &self.user_agent)
                    .build()
                    .map_err(|e| format!("cannot set up TLS: {}", innermost(&e)))
            })
            .as_ref()
            .map_err(|message| FetchError::Other {
                url: url.to_string(),
                message: message.clone(),
            })
    }

    /// GETs `url` (conditionally when validators are known), following redirects, all
    /// within one total timeout.
    pub async fn fetch(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let secs = self.cfg.timeout.as_secs();
        match tokio::time::timeout(self.cfg.timeout, self.fetch_inner(url, validators)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_string(),
                secs,
            }),
        }
    }

    async fn fetch_inner(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let u = url.to_string();
        let secs = self.cfg.timeout.as_secs();
        let map_err = |e: reqwest::Error| classify(&u, e, secs);
        let mut current = url.clone();
        let mut visited: HashSet<Url> = HashSet::from([url.clone()]);
        let mut chain = vec![url.to_string()];
        let mut all_permanent = true;
        let resp = loop {
            let mut req = self
                .client_for(&current)?
                .get(current.clone())
                .header(header::ACCEPT, ACCEPT);
            if let Some(e) = &validators.etag {
                req = req.header(header::IF_NONE_MATCH, e);
            }
            if let Some(l) = &validators.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, l);
            }
            let resp = req.send().await.map_err(map_err)?;
            let status = resp.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                break resp;
            }
            let next = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| current.join(l).ok())
                .ok_or_else(|| FetchError::BadRedirect { url: u.clone() })?;
            all_permanent &= matches!(
                status,
                StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
            );
            chain.push(format!("{} → {next}", status.as_u16()));
            if !visited.insert(next.clone()) {
                return Err(FetchError::RedirectLoop {
                    url: u,
                    chain: chain.join(", "),
                });
            }
            if chain.len() - 1 > self.cfg.max_redirects {
                return Err(FetchError::TooManyRedirects {
                    url: u,
                    max: self.cfg.max_redirects,
                    chain: chain.join(", "),
                });
            }
            current = next;
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let max_age = max_age(&headers);
        let final_url = resp.url().clone();
        let moved_permanently = (all_permanent && final_url != *url).then(|| final_url.clone());
        let new_validators = Validators {
            etag: header_str(&headers, header::ETAG),
            last_modified: header_str(&headers, header::LAST_MODIFIED),
        };
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified {
                max_age,
                validators: new_validators,
                moved_permanently,
            });
        }
        if status == StatusCode::GONE {
            return Err(FetchError::Gone { url: u });
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: u,
                status: status.as_u16(),
                retry_after: retry_after(&headers),
            });
        }
        let limit = self.cfg.max_body_bytes;
        let encoded = headers.contains_key(header::CONTENT_ENCODING);
        // Content-Length counts compressed bytes; only an identity body can be judged
        // before reading. Everything else is counted while streaming, decompressed.
        if !encoded && resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { url: u, limit });
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(map_err)?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { url: u, limit });
            }
            body.extend_from_slice(&chunk);
        }
        let content_type = header_str(&headers, header::CONTENT_TYPE);
        let charset = content_type.as_deref().and_then(charset_of);
        Ok(FetchOutcome::Fetched(Box::new(Fetched {
            final_url,
            body,
            charset,
            content_type,
            validators: new_validators,
            moved_permanently,
            max_age,
        })))
    }
}

/// The innermost cause of `e`: the one an operator can act on ("connection refused",
/// "No CA certificates were loaded from the system"), where reqwest's own message is
/// only "error sending request" or "builder error".
fn innermost(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

fn classify(url: &str, e: reqwest::Error, timeout_secs: u64) -> FetchError {
    let root = innermost(&e);
    if e.is_timeout() {
        FetchError::Timeout {
            url: url.to_owned(),
            secs: timeout_secs,
        }
    } else if e.is_connect() {
        FetchError::Connect {
            url: url.to_owned(),
            message: root,
        }
    } else if e.is_decode() {
        FetchError::Other {
            url: url.to_owned(),
            message: format!("cannot decompress the body: {root}"),
        }
    } else if e.is_body() {
        FetchError::Other {
            url: url.to_owned(),
            message: format!("connection broke while reading the body: {root}"),
        }
    } else {
        FetchError::Other {
            url: url.to_owned(),
            message: root,
        }
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `charset` parameter of a Content-Type value.
pub fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("charset")).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

fn max_age(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(header::CACHE_CONTROL)?.to_str().ok()?;
    v.split(',').find_map(|d| {
        let (k, v) = d.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("max-age"))
            .then(|| v.trim().parse::<u64>().ok().map(Duration::from_secs))
            .flatten()
    })
}

/// The politeness key of a URL: scheme, host and port ("one request at a time per host").
pub fn host_key(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration without `https:` sources never loads the system's root
    /// certificates: only the first `https:` hop builds the verifying client, and clones
    /// share it.
    #[test]
    fn the_verifying_client_is_built_at_the_first_https_hop_only() {
        let f = Fetcher::new(&FetchConfig::default(), "feedwerk-test");
        let copy = f.clone();
        f.client_for(&Url::parse("http://127.0.0.1:8080/feed.xml").unwrap())
            .unwrap();
        assert!(f.tls.get().is_none());
        f.client_for(&Url::parse("https://127.0.0.1:8443/feed.xml").unwrap())
            .unwrap();
        assert!(copy.tls.get().is_some_and(|c| c.is_ok()));
    }
}
