//! `publish.target`, `publish.max_deletes` and `[publish.s3]`: where the outputs are
//! uploaded besides `output_dir` (an S3-compatible bucket behind a CDN), validated into
//! a [`RemoteTarget`]. Credentials are deliberately not part of it: they come from the
//! environment and the standard credential sources only (see `crate::upload::target`),
//! and a credential written into `config.toml` is refused here with a pointer to them.

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::problems::Problems;

/// Hugo's `deploy` default: more deletes than this in one upload is far more likely a
/// mistake (an empty `output_dir`, a wrong prefix) than an intended change.
pub const DEFAULT_MAX_DELETES: i64 = 256;

/// `[publish.s3]` as serde reads it. The credential keys are read only to be refused.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawS3 {
    #[serde(default)]
    endpoint: Option<Spanned<String>>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    path_style: Option<bool>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    access_key_id: Option<Spanned<toml::Value>>,
    #[serde(default)]
    secret_access_key: Option<Spanned<toml::Value>>,
    #[serde(default)]
    session_token: Option<Spanned<toml::Value>>,
}

/// An S3-compatible bucket (and key prefix) the published documents are uploaded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    /// `s3://bucket/prefix/` as configured (normalised): the target's name in the store,
    /// in `feedwerk sources` and in logs.
    pub url: String,
    pub bucket: String,
    /// Key prefix, empty or ending with `/`.
    pub prefix: String,
    /// For S3-compatible services (MinIO, Ceph, Garage, R2, …); AWS when unset.
    pub endpoint: Option<Url>,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION` when unset, then `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones
    /// (`bucket.endpoint/key`). Default: path-style with an `endpoint` (what most
    /// S3-compatible services expect), virtual-hosted for AWS.
    pub path_style: bool,
    /// Allow a plain-http endpoint (a service on the same host or a test server).
    pub allow_http: bool,
    /// More deletes than this in one upload are held back and reported.
    pub max_deletes: usize,
}

const CREDENTIALS: &str = "credentials are never read from config.toml: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the service's environment, e.g. with systemd's EnvironmentFile=, or use the instance's or container's role (see README, \"Object storage and CDN\")";

impl RemoteTarget {
    /// `None` without a `target`; problems are added to `p`.
    pub(super) fn from_raw(
        target: Option<&Spanned<String>>,
        max_deletes: &Spanned<i64>,
        s3: Option<&Spanned<RawS3>>,
        p: &mut Problems,
    ) -> Option<RemoteTarget> {
        if let Some(s3) = s3 {
            let raw = s3.get_ref();
            for (key, v) in [
                ("access_key_id", &raw.access_key_id),
                ("secret_access_key", &raw.secret_access_key),
                ("session_token", &raw.session_token),
            ] {
                if let Some(v) = v {
                    p.add(format!("publish.s3.{key}"), v.span(), CREDENTIALS);
                }
            }
        }
        if *max_deletes.get_ref() < 0 {
            p.add(
                "publish.max_deletes",
                max_deletes.span(),
                "must be 0 or more",
            );
        }
        let Some(target) = target else {
            if let Some(s3) = s3 {
                p.add(
                    "publish.s3",
                    s3.span(),
                    "has no effect without `publish.target = \"s3://bucket/prefix/\"`",
                );
            }
            return None;
        };
        let (bucket, prefix) = match parse_s3_url(target.get_ref()) {
            Ok(bp) => bp,
            Err(msg) => {
                p.add("publish.target", target.span(), msg);
                return None;
            }
        };
        let raw = s3.map(Spanned::get_ref);
        let endpoint =
            raw.and_then(|r| r.endpoint.as_ref())
                .and_then(|e| match Url::parse(e.get_ref()) {
                    Ok(u)
                        if matches!(u.scheme(), "http" | "https")
                            && u.username().is_empty()
                            && u.password().is_none() =>
                    {
                        Some(u)
                    }
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {
                        p.add("publish.s3.endpoint", e.span(), CREDENTIALS);
                        None
                    }
                    _ => {
                        p.add(
                            "publish.s3.endpoint",
                            e.span(),
                            "must be an http(s) URL, e.g. `https://s3.eu-central-1.example.com`",
                        );
                        None
                    }
                });
        let allow_http = raw.is_some_and(|r| r.allow_http);
        if let (Some(e), false) = (&endpoint, allow_http) {
            if e.scheme() == "http" {
                let span = raw
                    .and_then(|r| r.endpoint.as_ref())
                    .map(|e| e.span())
                    .unwrap_or(0..0);
                p.add(
                    "publish.s3.endpoint",
                    span,
                    "is plain http: set `allow_http = true` in [publish.s3] if that is meant",
                );
            }
        }
        let path_style = raw.and_then(|r| r.path_style).unwrap_or(endpoint.is_some());
        Some(RemoteTarget {
            url: format!("s3://{bucket}/{prefix}"),
            bucket,
            prefix,
            endpoint,
            region: raw.and_then(|r| r.region.clone()),
            path_style,
            allow_http,
            max_deletes: (*max_deletes.get_ref()).max(0) as usize,
        })
    }
}

/// `s3://bucket/prefix/` → bucket and prefix (empty, or ending with `/`).
fn parse_s3_url(text: &str) -> Result<(String, String), String> {
    let url = Url::parse(text)
        .map_err(|e| format!("`{text}` is not a URL ({e}); expected `s3://bucket/prefix/`"))?;
    match url.scheme() {
        "s3" => {}
        "gs" | "az" | "abfs" | "abfss" | "azure" => {
            return Err(format!(
                "`{text}`: only S3-compatible storage (`s3://bucket/prefix/`) is supported; for Google Cloud Storage, use its S3-compatible endpoint (`endpoint` in [publish.s3], with HMAC keys)"
            ))
        }
        s => return Err(format!("`{text}`: unknown scheme `{s}:`; expected `s3://bucket/prefix/`")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CREDENTIALS.to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() || url.port().is_some() {
        return Err(format!(
            "`{text}`: expected `s3://bucket/prefix/` without port, query or fragment (the endpoint goes in [publish.s3])"
        ));
    }
    let bucket = url.host_str().unwrap_or_default().to_owned();
    if bucket.is_empty() {
        return Err(format!(
            "`{text}` names no bucket; expected `s3://bucket/prefix/`"
        ));
    }
    let path = url.path().trim_matches('/');
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("`{text}`: the prefix may not contain `.` or `..`"));
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    Ok((bucket, prefix))
}

#[cfg(test)]
mod tests {
    use super::parse_s3_url;

    #[test]
    fn target_url_gives_bucket_and_slash_ended_prefix() {
        assert_eq!(
            parse_s3_url("s3://feeds/aktuelles").unwrap(),
            ("feeds".into(), "aktuelles/".into())
        );
        assert_eq!(
            parse_s3_url("s3://feeds/a/b/").unwrap(),
            ("feeds".into(), "a/b/".into())
        );
        assert_eq!(
            parse_s3_url("s3://feeds").unwrap(),
            ("feeds".into(), "".into())
        );
    }

    #[test]
    fn credentials_or_other_schemes_in_the_target_are_refused() {
        assert!(parse_s3_url("s3://AKIA:secret@feeds/x/")
            .unwrap_err()
            .contains("never read from config.toml"));
        assert!(parse_s3_url("gs://feeds/x/")
            .unwrap_err()
            .contains("only S3"));
        assert!(parse_s3_url("https://feeds/x/")
            .unwrap_err()
            .contains("unknown scheme"));
    }
}
