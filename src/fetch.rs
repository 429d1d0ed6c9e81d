//! HTTP for partner sources: one shared client, conditional GET, limits enforced while
//! streaming, and typed outcomes the scheduler can act on ("retry later" vs "gone").
//!
//! The fetcher does not decide encodings or parse: it reports the HTTP charset and the
//! bytes, and `source::decode` decides.

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
    pub body: Vec<u8>,
    pub charset: Option<String>,
    pub content_type: Option<String>,
    pub validators: Validators,
    /// Set when a permanent redirect (301/308) was followed: the operator should update the URL.
    pub moved_permanently: Option<Url>,
    /// `Cache-Control: max-age` the server asked for, if any.
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum FetchOutcome {
    Fetched(Box<Fetched>),
    NotModified { max_age: Option<Duration> },
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum FetchError {
    #[error("{url}: timed out after {secs}s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: cannot connect: {message}")]
    Connect { url: String, message: String },
    #[error("{url}: HTTP {status}")]
    Status {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{url}: gone (HTTP 410); polling stopped until the config changes")]
    Gone { url: String },
    #[error("{url}: body larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: too many redirects or a redirect loop")]
    Redirects { url: String },
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
}

/// The one HTTP client for partner fetches.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    cfg: FetchConfig,
}

impl Fetcher {
    pub fn new(cfg: &FetchConfig, user_agent: &str) -> Fetcher {
        let max = cfg.max_redirects;
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max || attempt.previous().contains(attempt.url()) {
                    attempt.error("too many redirects or a redirect loop")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .expect("the HTTP client configuration is static and valid");
        Fetcher {
            client,
            cfg: cfg.clone(),
        }
    }

    /// GETs `url`, conditionally when validators are known.
    pub async fn fetch(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let u = url.to_string();
        let mut req = self.client.get(url.clone()).header(
            header::ACCEPT,
            "application/atom+xml, application/rss+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5",
        );
        if let Some(e) = &validators.etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        if let Some(l) = &validators.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, l);
        }
        let timeout_secs = self.cfg.timeout.as_secs();
        let map_err = |e: reqwest::Error| classify(&u, e, timeout_secs);
        let resp = req.send().await.map_err(map_err)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let max_age = max_age(&headers);
        if status == StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified { max_age });
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
        let final_url = resp.url().clone();
        let limit = self.cfg.max_body_bytes;
        if resp.content_length().is_some_and(|n| n > limit) {
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
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let charset = content_type.as_deref().and_then(charset_of);
        let moved_permanently = (final_url != *url).then(|| final_url.clone());
        Ok(FetchOutcome::Fetched(Box::new(Fetched {
            final_url,
            body,
            charset,
            content_type,
            validators: Validators {
                etag: header_str(&headers, header::ETAG),
                last_modified: header_str(&headers, header::LAST_MODIFIED),
            },
            moved_permanently,
            max_age,
        })))
    }
}

fn classify(url: &str, e: reqwest::Error, timeout_secs: u64) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout {
            url: url.to_owned(),
            secs: timeout_secs,
        }
    } else if e.is_redirect() {
        FetchError::Redirects {
            url: url.to_owned(),
        }
    } else if e.is_connect() {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg = s.to_string();
            src = s.source();
        }
        FetchError::Connect {
            url: url.to_owned(),
            message: msg,
        }
    } else {
        FetchError::Other {
            url: url.to_owned(),
            message: e.to_string(),
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

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    when.duration_since(std::time::SystemTime::now()).ok()
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
