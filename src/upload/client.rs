//! The one place that speaks `object_store`: a client for a [`RemoteTarget`], and the
//! three calls an upload needs (look at an object, put one with its headers, delete
//! one). Credentials come from the standard places, never from the config:
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else the shared
//! credentials file ([`super::credentials`]), else `object_store`'s chain (a web-identity
//! token file, the container or instance role).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, StaticCredentialProvider,
};

use crate::config::RemoteTarget;

/// The headers an object is stored with (and served with by the bucket and the CDN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers<'a> {
    pub content_type: &'a str,
    pub cache_control: &'a str,
}

/// What a `HEAD` found at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

/// An object under the prefix, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The published path: the key without the prefix.
    pub path: String,
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
}

/// An object's bytes with the headers it was stored with.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub last_modified: DateTime<Utc>,
}

/// A connected target: the bucket client and the key prefix.
#[derive(Clone, Debug)]
pub struct Client {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl Client {
    /// A client for `t`; settings from the config override `AWS_*` variables.
    pub fn new(t: &RemoteTarget) -> Result<Client, String> {
        // A dead or unreachable target must cost a cycle seconds, not minutes: a few
        // quick retries here; the next cycle retries the rest (after back-off).
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
        };
        let options = ClientOptions::new()
            .with_allow_http(t.allow_http)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&t.bucket)
            .with_allow_http(t.allow_http)
            .with_virtual_hosted_style_request(!t.path_style)
            .with_retry(retry)
            .with_client_options(options);
        if let Some(region) = &t.region {
            b = b.with_region(region);
        }
        if let Some(endpoint) = &t.endpoint {
            b = b.with_endpoint(endpoint_for(endpoint, &t.bucket, t.path_style));
        }
        if let Some(c) = super::credentials::from_shared_file()? {
            b = b.with_credentials(Arc::new(StaticCredentialProvider::new(AwsCredential {
                key_id: c.key_id,
                secret_key: c.secret_key,
                token: c.token,
            })));
        }
        Ok(Client {
            store: Arc::new(b.build().map_err(|e| e.to_string())?),
            prefix: t.prefix.clone(),
        })
    }

    /// The object key of a published path.
    pub fn key(&self, path: &str) -> Key {
        Key::from(format!("{}{path}", self.prefix))
    }

    /// What is stored at `path`, if anything.
    pub async fn head(&self, path: &str) -> Result<Option<Found>, object_store::Error> {
        let opts = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.store.get_opts(&self.key(path), opts).await {
            Ok(r) => {
                let attr = |a: &Attribute| r.attributes.get(a).map(|v| v.to_string());
                Ok(Some(Found {
                    etag: r.meta.e_tag.clone(),
                    content_type: attr(&Attribute::ContentType),
                    cache_control: attr(&Attribute::CacheControl),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `body` at `path` with its headers (replacing what is there); returns the
    /// ETag the target gave it. A single PUT: the target shows the old object or the
    /// new one, never a mix.
    pub async fn put(
        &self,
        path: &str,
        body: Bytes,
        headers: &Headers<'_>,
    ) -> Result<Option<String>, object_store::Error> {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::ContentType,
            headers.content_type.to_owned().into(),
        );
        attributes.insert(
            Attribute::CacheControl,
            headers.cache_control.to_owned().into(),
        );
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            attributes,
            ..PutOptions::default()
        };
        let r = self
            .store
            .put_opts(&self.key(path), PutPayload::from_bytes(body), opts)
            .await?;
        Ok(r.e_tag)
    }

    /// Every object under the prefix (what a standby mirrors).
    pub async fn list(&self) -> Result<Vec<Listed>, object_store::Error> {
        let prefix = self.prefix.trim_end_matches('/');
        let prefix = (!prefix.is_empty()).then(|| Key::from(prefix));
        let mut stream = self.store.list(prefix.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            let key = meta.location.as_ref();
            let Some(path) = key.strip_prefix(self.prefix.as_str()) else {
                continue;
            };
            out.push(Listed {
                path: path.to_owned(),
                etag: meta.e_tag,
                last_modified: meta.last_modified,
            });
        }
        Ok(out)
    }

    /// The object at `path` with its headers; `None` when it is gone.
    pub async fn get(&self, path: &str) -> Result<Option<Fetched>, object_store::Error> {
        let r = match self
            .store
            .get_opts(&self.key(path), GetOptions::default())
            .await
        {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let attr = |a: &Attribute| r.attributes.get(a).map(|v| v.to_string());
        let (content_type, cache_control) = (
            attr(&Attribute::ContentType),
            attr(&Attribute::CacheControl),
        );
        let (etag, last_modified) = (r.meta.e_tag.clone(), r.meta.last_modified);
        Ok(Some(Fetched {
            body: r.bytes().await?,
            etag,
            content_type,
            cache_control,
            last_modified,
        }))
    }

    /// Deletes the object at `path`; one already gone is no error.
    pub async fn delete(&self, path: &str) -> Result<(), object_store::Error> {
        match self.store.delete(&self.key(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The endpoint `object_store` expects: as configured for path-style requests; with the
/// bucket as the first host label for virtual-hosted ones.
fn endpoint_for(endpoint: &url::Url, bucket: &str, path_style: bool) -> String {
    let mut e = endpoint.clone();
    if !path_style {
        if let Some(host) = endpoint.host_str() {
            let _ = e.set_host(Some(&format!("{bucket}.{host}")));
        }
    }
    e.as_str().trim_end_matches('/').to_owned()
}

/// The ETag S3 gives an object uploaded in one PUT: the hex MD5 of its bytes, quoted.
pub fn single_put_etag(body: &[u8]) -> String {
    use md5::Digest as _;
    let digest = md5::Md5::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_put_etag_is_the_quoted_md5() {
        assert_eq!(
            single_put_etag(b"hello"),
            "\"5d41402abc4b2a76b9719d911017c592\""
        );
    }

    #[test]
    fn virtual_hosted_endpoint_carries_the_bucket() {
        let e = url::Url::parse("https://s3.example.net/").unwrap();
        assert_eq!(endpoint_for(&e, "feeds", true), "https://s3.example.net");
        assert_eq!(
            endpoint_for(&e, "feeds", false),
            "https://feeds.s3.example.net"
        );
    }
}
